"""Finding one transform's state inside a composed optimizer state."""

from typing import Any, TypeVar

import jax

S = TypeVar("S")


def find_state(opt_state: Any, cls: type[S]) -> S | None:
  """The first `cls` instance (a transform's NamedTuple state) inside
  `opt_state`, however chains and wrappers nest it; None if there is none."""
  for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, cls)):
    if isinstance(s, cls):
      return s
  return None
