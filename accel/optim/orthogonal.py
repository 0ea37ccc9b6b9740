"""Orthogonalised momentum where it pays, NAdamW everywhere else.

The base the gradient transformer's learned part is to build on (issue
18): optax.contrib's Muon (Newton-Schulz orthogonalisation of Nesterov
momentum) on the hidden weight matrices that pass the cost rule below, and
optax.contrib's Adam half on every other leaf (embeddings, input and output
layers, biases, norms, and the matrices the rule turns down). optax's Muon
applies its Nesterov flag to both halves, so that half is NAdamW
(optax.nadamw, tested), the stronger of the two in our suites. Muon's
updates are scaled to its RMS (`consistent_rms`), so one learning rate
serves both halves.

The cost rule. Newton-Schulz's quintic iteration on an m x n matrix
(m <= n) costs 4 m^2 n + 2 m^3 <= 6 m^2 n FLOPs, so `ns_steps` iterations
cost at most 6 ns_steps m^2 n. The layer's forward and backward pass over
R rows a step (examples, or tokens for a sequence model) costs 6 R m n.
Their ratio is ns_steps * m / R: at 5 steps, 5 m / R, which is 20 for a
256-wide layer at batch 64 and 0.16 for a 128-wide layer at 4,096 tokens.
A matrix is orthogonalised when that ratio is at most `max_cost` (0.5 by
default: Newton-Schulz may add half the layer's own cost).

`rows_per_step` is one number for every kernel (the examples, or tokens,
a step), or a mapping from each kernel's path ("conv1/kernel") to its own
rows, which a convolution's output positions and a recurrence's steps
multiply: accel.models.kernel_rows counts them from the model's program,
and accel.train.build passes them. A kernel the mapping does not name
multiplies no rows it knows of and goes to NAdamW. With one number, a
convolution's rule errs towards NAdamW (its positions are not counted).

`max_cost=0` gives NAdamW on every leaf, `max_cost=inf` optax's Muon
hybrid on every hidden matrix (both tested to float tolerance).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import optax
from optax import contrib

from accel.errors import ConfigError
from accel.optim import matrices


def ns_cost(shape, dims: contrib.MuonDimensionNumbers, ns_steps: int,
            rows_per_step: int) -> float:
  """Newton-Schulz's FLOPs over the layer's forward+backward FLOPs for a
  kernel of `shape` read as a matrix by `dims`: ns_steps * m / R, m the
  matrix's smaller side."""
  axes = lambda a: (a,) if isinstance(a, int) else tuple(a)
  rows = math.prod(shape[i] for i in axes(dims.reduction_axis))
  cols = math.prod(shape[i] for i in axes(dims.output_axis))
  return ns_steps * min(rows, cols) / max(rows_per_step, 1)


Rows = int | Mapping[str, int]


def check_rows(rows_per_step: Rows) -> Rows:
  """`rows_per_step` if it is a count >= 1 or a non-empty mapping of kernel
  paths to counts >= 0; ConfigError otherwise."""
  if isinstance(rows_per_step, Mapping):
    ok = rows_per_step and all(
        isinstance(k, str) and isinstance(v, int) and v >= 0
        for k, v in rows_per_step.items())
  else:
    ok = isinstance(rows_per_step, int) and rows_per_step >= 1
  if not ok:
    raise ConfigError(
        f"rows_per_step must be the examples (or tokens) through each layer "
        f"a step, >= 1, or a mapping of kernel paths to their rows; got "
        f"{rows_per_step!r}.")
  return rows_per_step


def orthogonalised(params, *, rows_per_step: Rows, max_cost: float,
                   ns_steps: int = 5, exclude: str = matrices.INPUT_OUTPUT):
  """A tree like `params`: Muon's dimension numbers on every hidden matrix
  whose Newton-Schulz cost ratio is at most `max_cost`, None elsewhere."""
  hidden = matrices.hidden_matrices(params, exclude)

  def keep(keys, dims, p):
    if dims is None:
      return None
    rows = (rows_per_step.get(matrices.path(keys), 0)
            if isinstance(rows_per_step, Mapping) else rows_per_step)
    return None if ns_cost(p.shape, dims, ns_steps, rows) > max_cost else dims
  return jax.tree_util.tree_map_with_path(
      keep, hidden, params, is_leaf=lambda x: x is None or (
          isinstance(x, contrib.MuonDimensionNumbers)))


def hybrid(learning_rate: optax.ScalarOrSchedule, *, rows_per_step: Rows,
           max_cost: float = 0.5, ns_steps: int = 5, beta: float = 0.95,
           b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
           eps_root: float = 0.0, weight_decay: float = 0.0,
           mask: Any = None,
           consistent_rms: float = 0.2, mu_dtype: Any = None,
           exclude: str = matrices.INPUT_OUTPUT
           ) -> optax.GradientTransformation:
  """Muon on the matrices the cost rule keeps, NAdamW on the rest (module
  doc). `rows_per_step`: examples (or tokens) through each layer a step,
  or per kernel path.
  `eps_root` is optax's (inside the square root: > 0 keeps the
  derivative through the second moment finite, for meta-gradients).
  `weight_decay` is decoupled on both halves; `mask` applies to the Muon
  half (optax's Adam half decays every leaf it holds)."""
  check_rows(rows_per_step)
  if max_cost < 0:
    raise ConfigError(f"max_cost is a share of a layer's own cost, >= 0; "
                      f"got {max_cost}.")
  return contrib.muon(
      learning_rate, ns_steps=ns_steps, beta=beta, eps=eps,
      weight_decay=weight_decay, weight_decay_mask=mask, mu_dtype=mu_dtype,
      nesterov=True, adam_b1=b1, adam_b2=b2, adam_eps_root=eps_root,
      adam_weight_decay=weight_decay,
      consistent_rms=consistent_rms,
      muon_weight_dimension_numbers=lambda p: orthogonalised(
          p, rows_per_step=rows_per_step, max_cost=max_cost,
          ns_steps=ns_steps, exclude=exclude))
