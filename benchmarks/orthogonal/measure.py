"""Does Newton-Schulz cost what accel.optim.orthogonal's rule says?

  .venv/bin/python benchmarks/orthogonal/measure.py

For square layers of width m and R rows a step, times on this machine (a)
optax.contrib's Muon orthogonalisation of an m x m matrix (5 Newton-Schulz
steps, jitted) and (b) a dense layer's forward and backward pass over R
rows (jitted value_and_grad of a tanh layer), median of 50 calls each, and
compares the measured ratio with the rule's ns_steps * m / R. Writes
benchmarks/orthogonal/results.md.
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from optax import contrib

from accel.bench import host
from accel.optim import orthogonal

OUT = os.path.dirname(os.path.abspath(__file__))


def timed(fn, *args, n=50):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(n):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def main():
  dims = contrib.MuonDimensionNumbers(reduction_axis=0, output_axis=1)
  tx = contrib.scale_by_muon(weight_dimension_numbers=dims)
  rows = ["| width m | rows R | Newton-Schulz ms | layer fwd+bwd ms | "
          "measured ratio | rule 5 m / R |", "|---|---|---|---|---|---|"]
  for m in (64, 128, 256, 512):
    w = jnp.ones((m, m)) * 0.01
    state = tx.init(w)
    ns = jax.jit(lambda g, s: tx.update(g, s)[0])
    t_ns = timed(ns, w, state)
    for r in (64, 512, 4096):
      x = jnp.ones((r, m))
      layer = jax.jit(jax.value_and_grad(
          lambda w, x: jnp.sum(jnp.tanh(x @ w)), argnums=(0, 1)))
      t_layer = timed(layer, w, x)
      rule = orthogonal.ns_cost((m, m), dims, 5, r)
      rows.append(f"| {m} | {r} | {1e3 * t_ns:.3f} | {1e3 * t_layer:.3f} | "
                  f"{t_ns / t_layer:.2f} | {rule:.2f} |")
      print(rows[-1], flush=True)
  with open(os.path.join(OUT, "results.md"), "w") as f:
    f.write("\n".join([
        "`.venv/bin/python benchmarks/orthogonal/measure.py`", "",
        host.describe(jax.__version__, jax.devices()[0].device_kind), "",
        *rows]) + "\n")


if __name__ == "__main__":
  main()
