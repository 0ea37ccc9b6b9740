"""Checks of an optimizer's hyperparameters where they enter.

A value that `optax.inject_hyperparams` has made a traced array is not
checked (its value is not known while tracing); every concrete number is.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from accel.errors import ConfigError


def _number(name: str, value: Any) -> float | None:
  """`value` as a float; None when it is traced. Raises TypeError for a
  value that is not a number."""
  if isinstance(value, jax.core.Tracer):
    return None
  if not isinstance(value, (bool, str)):
    try:
      return float(value)
    except (TypeError, ValueError):
      pass
  raise ConfigError(f"{name} must be a number, got {value!r}.")


def check(name: str, value: Any, ok: Callable[[float], bool],
          expected: str) -> None:
  """Raises ValueError `"{name} must be {expected}, got {value}."` unless
  `ok(value)` (or the value is traced)."""
  x = _number(name, value)
  if x is not None and not (np.isfinite(x) and ok(x)):
    raise ConfigError(f"{name} must be {expected}, got {value!r}.")


def check_learning_rate(value: Any, name: str = "learning_rate") -> None:
  """A learning rate is a schedule (a callable) or a number > 0."""
  if callable(value):
    return
  if isinstance(value, str):
    raise ConfigError(f"{name} must be a number > 0 or an optax schedule, got "
                      f"the string {value!r}.")
  check(name, value, lambda x: x > 0, "> 0 (or an optax schedule)")


def check_decay(name: str, value: Any) -> None:
  """A moment's decay rate is in [0, 1)."""
  check(name, value, lambda x: 0 <= x < 1, "in [0, 1)")


def check_float_params(params, what: str) -> None:
  """Raises ConfigError naming the first parameter that is not a floating
  point array: `what` (a learned transform) would leave it unchanged."""
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and not jax.numpy.issubdtype(dtype,
                                                      jax.numpy.inexact):
      name = jax.tree_util.keystr(path, simple=True, separator="/")
      raise ConfigError(
          f"{what} trains floating-point parameters; {name!r} is {dtype}. "
          "Keep integer arrays out of the parameters, or wrap the transform "
          "in optax.masked to leave them out.")
