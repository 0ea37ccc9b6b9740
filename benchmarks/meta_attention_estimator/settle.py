r"""Does the meta-attention rate settle from a wrong start? (issue 19)

  python benchmarks/meta_attention_estimator/settle.py

The MNIST-1D MLP of measure.py (same data, batches, schedule shape and
steps), trained by `accel.optim.meta_attention_adamw` with its defaults
(horizon 100, hyper_lr 1e-3, max_multiplier 10) on a warmup-cosine base at
0.1x, 1x and 10x of 1e-2 (the best of measure.py's AdamW grid, with 3e-2),
with the network learning throughout (adapt_steps None) or during the first
800 steps only. Printed per run: the effective rate (base peak times the
geometric-mean multiplier) at steps 200, 800 and 2000, and the test
accuracy. The multiplier settles if the effective rates from the three
starts meet. Results: settle.json beside this file.
"""

import functools
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel.data import mnist1d
from accel.optim import meta_attention

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # pylint: disable=g-import-not-at-top

BASES = (1e-3, 1e-2, 1e-1)
ADAPT = (None, 800)
CHECKPOINTS = (200, 800, 2000)
KAPPAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


@functools.partial(jax.jit, static_argnames=("adapt_steps",))
def run(base, seed, x, y, x_test, y_test, adapt_steps):
  model = measure.MLP()
  key_init, key_data = jax.random.split(jax.random.PRNGKey(seed))
  params = model.init(key_init, x[:1])["params"]
  unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, measure.WARMUP,
                                            measure.STEPS)
  tx = meta_attention.meta_attention_adamw(lambda t: base * unit(t),
                                           adapt_steps=adapt_steps)

  def loss_fn(p, xb, yb):
    logits = model.apply({"params": p}, xb)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  def step(carry, t):
    params, opt_state = carry
    idx = jax.random.randint(jax.random.fold_in(key_data, t),
                             (measure.BATCH,), 0, x.shape[0])
    loss, g = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
    u, opt_state = tx.update(g, opt_state, params, value=loss)
    params = optax.apply_updates(params, u)
    m = meta_attention.find_state(opt_state).multiplier_T
    return (params, opt_state), jnp.mean(jnp.log(m))

  (params, _), log_m = jax.lax.scan(step, (params, tx.init(params)),
                                    jnp.arange(measure.STEPS))
  acc = jnp.mean(jnp.argmax(model.apply({"params": params}, x_test), -1)
                 == y_test)
  return log_m, acc


@functools.partial(jax.jit, static_argnames=("adapt_steps",))
def run_direct(base, seed, x, y, x_test, y_test, adapt_steps, kappa):
  """The estimator alone: AdamW whose global log multiplier takes the
  signed, unnormalised step -kappa * cos(gradient, trace) at every step
  from the end of warmup to `adapt_steps` (no network, no Adam on it)."""
  model = measure.MLP()
  key_init, key_data = jax.random.split(jax.random.PRNGKey(seed))
  params = model.init(key_init, x[:1])["params"]
  unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, measure.WARMUP,
                                            measure.STEPS)
  adam = optax.scale_by_adam()
  decay = 1 - 1 / measure.HORIZON

  def loss_fn(p, xb, yb):
    logits = model.apply({"params": p}, xb)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  def step(carry, t):
    params, adam_state, trace, log_m = carry
    idx = jax.random.randint(jax.random.fold_in(key_data, t),
                             (measure.BATCH,), 0, x.shape[0])
    _, g = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
    cos = measure._cos(g, trace)  # pylint: disable=protected-access
    adapting = (t >= measure.WARMUP) & (t < adapt_steps)
    log_m = jnp.clip(log_m - jnp.where(adapting, kappa * cos, 0.0),
                     -jnp.log(10.0), jnp.log(10.0))
    d, adam_state = adam.update(g, adam_state, params)
    u = jax.tree.map(lambda di: -base * unit(t) * jnp.exp(log_m) * di, d)
    trace = jax.tree.map(lambda e, ui: decay * e + ui, trace, u)
    return ((optax.apply_updates(params, u), adam_state, trace, log_m),
            log_m)

  zeros = optax.tree.zeros_like(params)
  (params, *_), log_m = jax.lax.scan(
      step, (params, adam.init(params), zeros, jnp.zeros([])),
      jnp.arange(measure.STEPS))
  acc = jnp.mean(jnp.argmax(model.apply({"params": params}, x_test), -1)
                 == y_test)
  return log_m, acc


def main():
  src = mnist1d.make_mnist1d()
  train, test = src.arrays("train"), src.arrays("test")
  data = [jnp.asarray(a) for a in (train["inputs"], train["label"],
                                   test["inputs"], test["label"])]
  rows = []
  for adapt in ADAPT:
    for base in BASES:
      for seed in measure.SEEDS:
        start = time.time()
        log_m, acc = jax.device_get(run(base, seed, *data, adapt_steps=adapt))
        rows.append(dict(
            adapt_steps=adapt, base=base, seed=seed, acc=float(acc),
            effective={s: float(base * np.exp(log_m[s - 1]))
                       for s in CHECKPOINTS}))
        print(json.dumps(rows[-1]), f"{time.time() - start:.1f}s", flush=True)
  for kappa in KAPPAS:
    for base in BASES:
      for seed in measure.SEEDS:
        log_m, acc = jax.device_get(run_direct(base, seed, *data, 800,
                                               kappa))
        rows.append(dict(
            direct_kappa=kappa, adapt_steps=800, base=base, seed=seed,
            acc=float(acc),
            effective={s: float(base * np.exp(log_m[s - 1]))
                       for s in CHECKPOINTS}))
        print(json.dumps(rows[-1]), flush=True)
  out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     "settle.json")
  with open(out, "w") as f:
    json.dump({"argv": sys.argv, "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
