"""Which parameters are hidden weight matrices, and how each one reads as a
matrix: what Muon orthogonalises (optax.contrib.muon's
`muon_weight_dimension_numbers`).

Muon is meant for the hidden layers only: the input layer (embeddings, a
CNN's first convolution, an MLP's first dense layer, a GRU's input
kernels), the output layer, and every bias, norm scale and positional table
go to AdamW, as the method's authors recommend. accel's models name those
layers so (`embed`, `conv0`, `classifier`, ...); `INPUT_OUTPUT` matches the
names, and a caller with other models passes its own pattern.
"""

from __future__ import annotations

import re

import jax
from optax import contrib

# Modules (anywhere in a parameter's path) whose kernels are input or
# output layers of accel's models.
INPUT_OUTPUT = (r"(^|/)(embed|patch_embed|stem|conv0|dense0|in|ir|iz|"
                r"head|lm_head|classifier)(/|$)")

# Attention projections from accel.models.attention: [D, heads, head_dim]
# for queries, keys and values, [heads, head_dim, D] for the output.
_IN_PROJECTIONS = ("query", "key", "value")


def path(keys) -> str:
  """A leaf's path as "module/.../name", as `exclude` patterns and rows
  mappings name it."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in keys)


def dimension_numbers(leaf_path: str, ndim: int):
  """How a kernel of `ndim` axes at `leaf_path` reads as a matrix: which
  axes it reduces over (its inputs) and which it produces."""
  module = leaf_path.split("/")[-2] if "/" in leaf_path else ""
  if ndim == 3 and module in _IN_PROJECTIONS:
    return contrib.MuonDimensionNumbers(reduction_axis=0,
                                        output_axis=(1, 2))
  if ndim == 3 and module == "out":
    return contrib.MuonDimensionNumbers(reduction_axis=(0, 1),
                                        output_axis=2)
  return contrib.MuonDimensionNumbers(
      reduction_axis=tuple(range(ndim - 1)) or 0, output_axis=ndim - 1)


def hidden_matrices(params, exclude: str = INPUT_OUTPUT):
  """A tree like `params`: MuonDimensionNumbers on every hidden layer's
  kernel (a leaf named `kernel`, 2 axes or more, in no module matched by
  the regular expression `exclude`), None on every other leaf."""
  pattern = re.compile(exclude)

  def spec(keys, leaf):
    leaf_path = path(keys)
    if (leaf_path.rsplit("/", 1)[-1] != "kernel" or leaf.ndim < 2
        or pattern.search(leaf_path.rsplit("/", 1)[0])):
      return None
    return dimension_numbers(leaf_path, leaf.ndim)
  return jax.tree_util.tree_map_with_path(spec, params)
