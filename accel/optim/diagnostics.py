"""What accel's optimizers report for logging, found in any composed state.

The factory hands these to the train step and loop through its `Optimizer`
object, so neither imports an optimizer module:
  scalars(opt_state)           -> {name: scalar}, inside the jitted step;
  heatmaps(opt_state, params)  -> {name: Heatmap}, on the host.
Both are empty when the state holds none of accel's transforms.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from accel.optim import gt_transform
from accel.optim import meta_attention


class Heatmap(NamedTuple):
  """A labelled matrix for an image in TensorBoard."""
  matrix_RxC: np.ndarray
  row_labels: list[str]
  col_labels: list[str]
  title: str


def scalars(opt_state) -> dict[str, jax.Array]:
  return {**gt_transform.diagnostics(opt_state),
          **meta_attention.diagnostics(opt_state)}


def heatmaps(opt_state, params) -> dict[str, Heatmap]:
  table = meta_attention.attention_table(opt_state, params)
  if table is None:
    return {}
  matrix, names = table
  return {"meta_lr/attention": Heatmap(matrix, names, ["(global)"] + names,
                                       "meta-attention weights")}


def none_scalars(opt_state) -> dict[str, Any]:
  del opt_state
  return {}


def none_heatmaps(opt_state, params) -> dict[str, Heatmap]:
  del opt_state, params
  return {}
