r"""Does the meta-attention rate settle from a wrong start? (issue 19)

  python benchmarks/meta_attention_estimator/settle.py

The MNIST-1D MLP of measure.py (same data, batches, schedule shape and
steps), on a warmup-cosine base peaking at 0.1x, 1x and 10x of 1e-2 (the
best of measure.py's AdamW grid, with 3e-2), trained by:
  - `accel.optim.meta_attention_adamw` at its defaults (horizon 100,
    hyper_lr 1e-3, max_multiplier 10), the network learning throughout or
    during the first 800 steps only (adapt_steps);
  - the same with the level (level_rate kappa: a global log multiplier
    taking signed steps -kappa * cos(gradient, trace)) during the first
    800 steps, the network learning at hyper_lr 1e-3, 1e-4 or frozen (0);
  - the estimator alone outside the transform (`run_direct`): AdamW whose
    global log multiplier takes those signed steps from step `start`
    (0 or 100, the end of warmup) to 800.
Printed per run: the effective rate (base peak times the geometric-mean
multiplier) at steps 200, 800 and 2000, and the test accuracy. The rate
settles if the effective rates from the three starts meet. Results:
settle.json beside this file.
"""

import functools
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel.optim import meta_attention

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # pylint: disable=g-import-not-at-top

BASES = (1e-3, 1e-2, 1e-1)
ADAPT = (None, 800)
CHECKPOINTS = (200, 800, 2000)
DIRECT = tuple((k, 100) for k in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)) + (
    (1.0, 0), (3.0, 0))
# The transform's level (level_rate, hyper_lr), learning from step 0.
LEVEL = ((1.0, 1e-3), (1.0, 1e-4), (1.0, 0.0), (3.0, 0.0))


@functools.partial(jax.jit, static_argnames=(
    "adapt_steps", "level_rate", "hyper_lr", "steps", "horizon"))
def run(base, seed, x, y, x_test, y_test, *, adapt_steps, level_rate=0.0,
        hyper_lr=1e-3, steps=measure.STEPS, horizon=measure.HORIZON):
  """`steps` of training (warm-up, then cosine to 0); returns the log of
  the applied multiplier (mean over tensors) each step, and the test
  accuracy. The network learns when hyper_lr > 0."""
  model = measure.MLP()
  key_init, key_data = jax.random.split(jax.random.PRNGKey(seed))
  params = model.init(key_init, x[:1])["params"]
  unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, measure.WARMUP,
                                            steps)
  tx = meta_attention.meta_attention_adamw(lambda t: base * unit(t),
                                           adapt_steps=adapt_steps,
                                           level_rate=level_rate,
                                           hyper_lr=hyper_lr,
                                           learn_groups=hyper_lr > 0,
                                           horizon=horizon)

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
    s = meta_attention.find_state(opt_state)
    return (params, opt_state), jnp.mean(jnp.log(s.multiplier_T)) + s.level

  (params, _), log_m = jax.lax.scan(step, (params, tx.init(params)),
                                    jnp.arange(steps))
  return log_m, measure.accuracy(model, params, x_test, y_test)


@functools.partial(jax.jit, static_argnames=("adapt_steps", "start"))
def run_direct(base, seed, x, y, x_test, y_test, *, adapt_steps, kappa,
               start=measure.WARMUP):
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
    adapting = (t >= start) & (t < adapt_steps)
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
  return log_m, measure.accuracy(model, params, x_test, y_test)


def main():
  data = measure.load_data()
  variants = (
      [(dict(adapt_steps=a), functools.partial(run, adapt_steps=a))
       for a in ADAPT]
      + [(dict(level_rate=k, hyper_lr=h, adapt_steps=800),
          functools.partial(run, adapt_steps=800, level_rate=k, hyper_lr=h))
         for k, h in LEVEL]
      + [(dict(direct_kappa=k, start=s, adapt_steps=800),
          functools.partial(run_direct, adapt_steps=800, kappa=k, start=s))
         for k, s in DIRECT])
  rows = []
  for label, fn in variants:
    for base in BASES:
      for seed in measure.SEEDS:
        log_m, acc = jax.device_get(fn(base, seed, *data))
        rows.append(dict(
            **label, base=base, seed=seed, acc=float(acc),
            effective={s: float(base * np.exp(log_m[s - 1]))
                       for s in CHECKPOINTS}))
        print(json.dumps(rows[-1]), flush=True)
  measure.save(rows, "settle.json")


if __name__ == "__main__":
  main()
