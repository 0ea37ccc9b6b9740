"""Prodigy with the meta-attention level: Prodigy exactly when the level is
held, a level that falls from a step 10x too large, bounded, and named
errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax import contrib

from accel import optim
from accel.optim import meta_attention
from accel.optim import meta_attention_prodigy as map_lib
from accel.train import config as config_lib


def _run(tx, grad_fn, params, steps):
  state = tx.init(params)
  update = jax.jit(tx.update)
  for _ in range(steps):
    g = grad_fn(params)
    u, state = update(g, state, params, value=jnp.float32(1.0))
    params = optax.apply_updates(params, u)
  return params, state


def _noisy_grads(params):
  return jax.tree.map(lambda p: jnp.sin(3.0 * p) + 0.1, params)


@pytest.mark.parametrize("estim_lr0", [1e-6, 1e-3])
def test_a_held_level_is_prodigy_exactly(estim_lr0):
  params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4),
            "b": jnp.zeros(4)}
  got, _ = _run(map_lib.meta_attention_prodigy(
      1.0, level_rate=0.0, weight_decay=0.01, estim_lr0=estim_lr0),
                _noisy_grads, params, 6)
  want, _ = _run(contrib.prodigy(1.0, weight_decay=0.01,
                                 estim_lr0=estim_lr0), _noisy_grads,
                 params, 6)
  jax.tree.map(np.testing.assert_array_equal, got, want)


def test_the_level_falls_from_a_step_ten_times_too_large():
  # A quadratic of curvature 1, where Prodigy's own estimate is about
  # right: at 10x its estimate the iterates overshoot and the gradient turns
  # against the trace of updates.
  params = {"x": jnp.full((8,), 3.0)}
  grad = lambda p: {"x": p["x"]}
  _, state = _run(map_lib.meta_attention_prodigy(10.0, max_multiplier=3.0),
                  grad, params, 200)
  level = float(meta_attention.find_state(state).level)
  assert np.log(1 / 3.0) - 1e-6 <= level < -0.3
  _, state = _run(map_lib.meta_attention_prodigy(10.0, max_multiplier=3.0,
                                                 adapt_steps=0),
                  grad, params, 50)
  assert float(meta_attention.find_state(state).level) == 0.0


def test_the_level_is_held_until_adapt_start():
  params = {"x": jnp.full((8,), 3.0)}
  grad = lambda p: {"x": p["x"]}
  tx = map_lib.meta_attention_prodigy(10.0, adapt_start=30, adapt_steps=60)
  _, state = _run(tx, grad, params, 30)
  assert float(meta_attention.find_state(state).level) == 0.0
  _, state = _run(tx, grad, params, 60)
  assert float(meta_attention.find_state(state).level) < 0.0


def test_bad_options_are_named():
  with pytest.raises(ValueError, match="max_multiplier must be >= 1, got 0.5"):
    map_lib.meta_attention_prodigy(max_multiplier=0.5)
  with pytest.raises(ValueError, match="adapt_steps must be >= 0"):
    map_lib.meta_attention_prodigy(adapt_steps=-1)
  with pytest.raises(ValueError, match="adapt_start must be >= 0, got -2"):
    map_lib.meta_attention_prodigy(adapt_start=-2)
  with pytest.raises(ValueError, match=r"adapt_start_fraction must be in "
                     r"\[0, adapt_fraction=0.4\], got 0.5"):
    optim.make(config_lib.optim_section("meta_attention_prodigy",
                                        adapt_start_fraction=0.5),
               total_steps=10)
