r"""Which learning-rate estimator points the right way? (issue 19)

  python benchmarks/meta_attention_estimator/measure.py

AdamW (warmup 100, cosine to 0) trains the MNIST-1D MLP (40-256-256-10,
batch 128, 2,000 steps) at rates from 0.1x to 10x of the best one on this
grid. Along each run, three estimates of d loss / d log(learning rate):

  trace     the current estimator: cosine of the gradient with the trace
            of the updates decaying by 1 - 1/100 (run frozen: the run is
            exactly AdamW);
  one_step  Baydin et al.: cosine of the gradient with the last update
            (frozen, likewise);
  probe     a finite difference of the loss: the rate is multiplied by
            exp(+-delta) in blocks of `block` steps, in ABBA order (so a
            linear trend cancels); per ABBA quartet, the mean training loss
            of the second half of the A blocks minus that of the B blocks,
            over 2 delta. This run is AdamW with that square wave on its
            rate (geometric mean 1).

A negative estimate says "raise the rate". An estimator a learning rate can
settle on must be negative below the best rate, positive above it and near
zero at it. Printed: each estimate's mean and standard error over each third
of training, per rate, averaged over seeds; and each run's test accuracy.
Results: results.md beside this file.
"""

import functools
import json
import os
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel.data import mnist1d

STEPS, BATCH, WARMUP, HORIZON = 2000, 128, 100, 100.0
DELTA, BLOCK = 0.3, 25
RATES = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
SEEDS = (0, 1)


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    for width in (256, 256):
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(10)(x)


def _dot(a, b):
  return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a),
                                            jax.tree.leaves(b)))


def _cos(a, b):
  return _dot(a, b) / jnp.sqrt(_dot(a, a) * _dot(b, b) + 1e-30)


@functools.partial(jax.jit, static_argnames=("probe",))
def run(lr, seed, x, y, x_test, y_test, probe):
  model = MLP()
  key_init, key_data = jax.random.split(jax.random.PRNGKey(seed))
  params = model.init(key_init, x[:1])["params"]
  adam = optax.scale_by_adam()
  unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, WARMUP, STEPS)
  schedule = lambda t: lr * unit(t)
  # ABBA: + - - +, each for BLOCK steps.
  pattern = jnp.array([1.0, -1.0, -1.0, 1.0])

  def loss_fn(p, xb, yb):
    logits = model.apply({"params": p}, xb)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  def step(carry, t):
    params, adam_state, trace, last = carry
    idx = jax.random.randint(jax.random.fold_in(key_data, t), (BATCH,), 0,
                             x.shape[0])
    loss, g = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
    cos_trace, cos_one = _cos(g, trace), _cos(g, last)
    d, adam_state = adam.update(g, adam_state, params)
    sign = pattern[(t // BLOCK) % 4] if probe else 0.0
    scale = -schedule(t) * jnp.exp(DELTA * sign)
    u = jax.tree.map(lambda di: scale * di, d)
    params = optax.apply_updates(params, u)
    trace = jax.tree.map(lambda e, ui: (1 - 1 / HORIZON) * e + ui, trace, u)
    return (params, adam_state, trace, u), (loss, cos_trace, cos_one)

  zeros = optax.tree.zeros_like(params)
  (params, *_), (loss, cos_trace, cos_one) = jax.lax.scan(
      step, (params, adam.init(params), zeros, zeros), jnp.arange(STEPS))
  return loss, cos_trace, cos_one, accuracy(model, params, x_test, y_test)


def accuracy(model, params, x, y):
  return jnp.mean(jnp.argmax(model.apply({"params": params}, x), -1) == y)


def load_data():
  """MNIST-1D's train inputs and labels, then its test ones, on device."""
  src = mnist1d.make_mnist1d()
  train, test = src.arrays("train"), src.arrays("test")
  return [jnp.asarray(a) for a in (train["inputs"], train["label"],
                                   test["inputs"], test["label"])]


def save(rows, name):
  out = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
  with open(out, "w") as f:
    json.dump({"argv": sys.argv, "rows": rows}, f, indent=1)


def probe_estimates(loss):
  """d loss / d log rate per ABBA quartet (module doc)."""
  quartets = len(loss) // (4 * BLOCK)
  blocks = loss[:quartets * 4 * BLOCK].reshape(quartets, 4, BLOCK)
  level = blocks[:, :, BLOCK // 2:].mean(-1)          # [Q, 4]
  a, b = level[:, 0] + level[:, 3], level[:, 1] + level[:, 2]
  return (a - b) / 2 / (2 * DELTA)


def thirds(values):
  return np.array_split(np.asarray(values), 3)


def main():
  x, y, xt, yt = load_data()
  rows = []
  for lr in RATES:
    for seed in SEEDS:
      start = time.time()
      loss, ct, co, acc = jax.device_get(run(lr, seed, x, y, xt, yt, False))
      ploss, _, _, pacc = jax.device_get(run(lr, seed, x, y, xt, yt, True))
      est = {"trace": [float(np.mean(p)) for p in thirds(ct[1:])],
             "one_step": [float(np.mean(p)) for p in thirds(co[1:])]}
      pe = probe_estimates(np.asarray(ploss))
      est["probe"] = [float(np.mean(p)) for p in thirds(pe)]
      est["probe_se"] = [float(np.std(p) / np.sqrt(len(p)))
                         for p in thirds(pe)]
      rows.append(dict(lr=lr, seed=seed, acc=float(acc),
                       probe_acc=float(pacc), **est))
      print(json.dumps(rows[-1]), f"{time.time() - start:.1f}s", flush=True)
  save(rows, "results.json")


if __name__ == "__main__":
  main()
