r"""The level's horizon and rate on the MNIST-1D MLP at the quick suite's
600-step budget (issue 19; accuracy only, no timings).

  python benchmarks/meta_attention_estimator/horizon.py > \
      benchmarks/meta_attention_estimator/horizon.txt

measure.py's MLP, data and batches, warm-up 100 then cosine to 0 over 600
steps, `meta_attention_adamw` (no network) with the level learning during
the first `a` share of the run at rate `k` over an `h`-step trace
(defaults k 1, a 40%, h 100), started at 1e-3, 1e-2, 3e-2 and 1e-1;
"adamw" is the level held at 0. Each line: the effective rate (base times
exp(level), geometric mean over seeds 0 and 1) at steps 100, 240 and 600,
and the mean test accuracy.
"""

import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel.optim import meta_attention

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # pylint: disable=g-import-not-at-top

STEPS, WARMUP = 600, 100
BASES = (1e-3, 1e-2, 3e-2, 1e-1)
CHECKPOINTS = (100, int(0.4 * STEPS), STEPS)
# name: (share of the run the level learns, level_rate, horizon)
VARIANTS = {
    "adamw": (0.0, 0.0, 100.0),
    "k1_a40": (0.4, 1.0, 100.0),
    "k1_all": (1.0, 1.0, 100.0),
    "k3_a40": (0.4, 3.0, 100.0),
    "k1_a40_h30": (0.4, 1.0, 30.0),
    "k1_a40_h300": (0.4, 1.0, 300.0),
    "k1_a40_h1000": (0.4, 1.0, 1000.0),
    "k1_a40_h3000": (0.4, 1.0, 3000.0),
    "k2_a40_h300": (0.4, 2.0, 300.0),
    "k1_a60_h300": (0.6, 1.0, 300.0),
}


@functools.partial(jax.jit,
                   static_argnames=("adapt_steps", "level_rate", "horizon"))
def run(base, seed, x, y, x_test, y_test, *, adapt_steps, level_rate,
        horizon):
  model = measure.MLP()
  key_init, key_data = jax.random.split(jax.random.PRNGKey(seed))
  params = model.init(key_init, x[:1])["params"]
  unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, WARMUP, STEPS)
  tx = meta_attention.meta_attention_adamw(
      lambda t: base * unit(t), adapt_steps=adapt_steps,
      level_rate=level_rate, horizon=horizon)

  def loss_fn(p, xb, yb):
    logits = model.apply({"params": p}, xb)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  def step(carry, t):
    params, state = carry
    idx = jax.random.randint(jax.random.fold_in(key_data, t),
                             (measure.BATCH,), 0, x.shape[0])
    loss, g = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
    u, state = tx.update(g, state, params, value=loss)
    return ((optax.apply_updates(params, u), state),
            meta_attention.find_state(state).level)

  (params, _), level = jax.lax.scan(step, (params, tx.init(params)),
                                    jnp.arange(STEPS))
  return level, measure.accuracy(model, params, x_test, y_test)


def main():
  data = measure.load_data()
  for name, (share, rate, horizon) in VARIANTS.items():
    for base in BASES:
      accs, rates = [], []
      for seed in (0, 1):
        level, acc = jax.device_get(run(
            base, seed, *data, adapt_steps=int(share * STEPS),
            level_rate=rate, horizon=horizon))
        accs.append(float(acc))
        rates.append([base * np.exp(level[s - 1]) for s in CHECKPOINTS])
      rate_at = np.exp(np.mean(np.log(rates), 0))
      print(f"{name:12s} base {base:g}: rate at steps "
            f"{'/'.join(map(str, CHECKPOINTS))} "
            + " / ".join(f"{r:.2g}" for r in rate_at)
            + f"  acc {np.mean(accs):.3f}", flush=True)


if __name__ == "__main__":
  main()
