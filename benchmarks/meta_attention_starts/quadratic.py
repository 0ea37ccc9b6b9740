"""The level alone on gradient descent over 0.5 sum h_i x_i^2, h in [1, 4]
(best constant rate 2 / (1 + 4) = 0.4; tests/optim/test_meta_attention.py's
quadratic), started at 10x (4.0) and 0.1x (0.04), learning for 100 of 120
steps: the options the test pins (level_rate 1, horizon 100, bounds 100x)
against the `step` candidate of measure.py (level_rate 3, horizon 1000,
max_level_step 0.1) and its parts, and the level's rises bounded with its
falls left free (max_level_rise 0.1).

  .venv/bin/python benchmarks/meta_attention_starts/quadratic.py > \
      benchmarks/meta_attention_starts/quadratic.log
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel.optim import meta_attention as ma

OPTIONS = {
    "test's (level_rate 1, horizon 100)": dict(level_rate=1.0),
    "level_rate 3, horizon 1000": dict(level_rate=3.0, horizon=1000.0),
    "level_rate 3, horizon 1000, max_level_step 0.1": dict(
        level_rate=3.0, horizon=1000.0, max_level_step=0.1),
    "level_rate 3, horizon 100, max_level_step 0.1": dict(
        level_rate=3.0, max_level_step=0.1),
    "level_rate 3, horizon 100": dict(level_rate=3.0),
    "level_rate 1, horizon 100, max_level_rise 0.1": dict(
        level_rate=1.0, max_level_rise=0.1),
    "level_rate 3, horizon 1000, max_level_rise 0.1": dict(
        level_rate=3.0, horizon=1000.0, max_level_rise=0.1),
    "level_rate 3, horizon 100, max_level_rise 0.1": dict(
        level_rate=3.0, max_level_rise=0.1),
}


def run(lr, **options):
  h = jnp.linspace(1.0, 4.0, 16)
  params = {"x": jnp.ones(16)}
  tx = ma.scale_by_meta_attention_lr(lr, hyper_lr=0.0, max_multiplier=100.0,
                                     adapt_steps=100, **options)
  state = tx.init(params)
  step = jax.jit(tx.update)
  for _ in range(120):
    out, state = step({"x": h * params["x"]}, state, params)
    params = optax.apply_updates(params, out)
  return (lr * float(np.exp(state.level)),
          float(0.5 * jnp.sum(h * params["x"] ** 2)))


def main():
  print("| options | from 4.0: rate, loss | from 0.04: rate, loss |")
  print("|---|---|---|")
  for name, options in OPTIONS.items():
    cells = [f"{r:.3g}, {l:.3g}" for r, l in (run(s, **options)
                                              for s in (4.0, 0.04))]
    print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
