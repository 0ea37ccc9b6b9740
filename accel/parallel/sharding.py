"""Shardings for the train state and the batches, from logical axis names.

Parameters get theirs from the logical names the models attach (see
`accel.models.layers`) and `config.axis_rules`. A dimension that the mesh
axes do not divide is left unsplit rather than padded. Optimizer state
follows the parameters: a state leaf whose trailing path (its dict keys) is a
parameter's path and whose shape is that parameter's shape (or that shape
with a leading axis) is sharded like the parameter; everything else (counts,
per-tensor statistics, the learned optimizers' small networks) is replicated.
"""

from __future__ import annotations

import math
from typing import Any

from absl import logging
import flax
import flax.linen as nn
import jax
import numpy as np

from accel.parallel import mesh as mesh_lib

P = jax.sharding.PartitionSpec
NamedSharding = jax.sharding.NamedSharding


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def axis_size(mesh, target) -> int:
  """Devices along `target`: a mesh axis name, a tuple of them, or None."""
  if target is None:
    return 1
  names = (target,) if isinstance(target, str) else target
  return math.prod(mesh.shape[n] for n in names)


def fit_spec(spec: P, shape, mesh) -> P:
  """`spec` with every dimension that the mesh does not divide, or that
  maps to mesh axes of size 1, left unsplit (None)."""
  dims = list(spec) + [None] * (len(shape) - len(spec))
  return P(*[t if axis_size(mesh, t) > 1 and n % axis_size(mesh, t) == 0
             else None for t, n in zip(dims, shape)])


def logical_specs(boxed_params) -> Any:
  """The logical PartitionSpec of each parameter of flax-boxed params."""
  return nn.get_partition_spec(boxed_params)


def param_shardings(boxed_params, mesh, rules) -> Any:
  """A NamedSharding per parameter, from its logical names and `rules`.

  `boxed_params` are parameters (or their shapes, from jax.eval_shape) still
  wrapped in flax's LogicallyPartitioned boxes.
  """
  rules = mesh_lib.check_axis_rules(rules)
  specs = logical_specs(boxed_params)
  shapes = nn.unbox(boxed_params)

  def one(spec, shaped):
    mesh_spec = nn.logical_to_mesh_axes(tuple(spec), rules)
    return NamedSharding(mesh, fit_spec(mesh_spec, np.shape(shaped), mesh))
  return jax.tree.map(one, specs, shapes,
                      is_leaf=lambda x: isinstance(x, P))


def _dict_suffix(path) -> tuple[str, ...]:
  """The trailing dict keys of a key path (the part that mirrors params)."""
  keys = []
  for entry in reversed(path):
    if not isinstance(entry, jax.tree_util.DictKey):
      break
    keys.append(str(entry.key))
  return tuple(reversed(keys))


def follow_params(tree, params, shardings, mesh) -> Any:
  """Shardings for `tree` (e.g. optimizer state) that follow the params'.

  Args:
    tree: arrays or ShapeDtypeStructs.
    params: the parameters (or their shapes), a nested dict.
    shardings: a NamedSharding per parameter.
    mesh: the mesh; unmatched leaves are replicated over it.
  """
  table = {}
  for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
    table[_dict_suffix(path)] = (tuple(np.shape(p)), None)
  flat_shardings = jax.tree_util.tree_flatten_with_path(shardings)[0]
  for path, s in flat_shardings:
    key = _dict_suffix(path)
    table[key] = (table[key][0], s)

  def one(path, leaf):
    shape = tuple(np.shape(leaf))
    suffix = _dict_suffix(path)
    for start in range(len(suffix)):
      match = table.get(suffix[start:])
      if match is None:
        continue
      param_shape, s = match
      if shape == param_shape:
        return s
      if shape[1:] == param_shape:  # a stack of parameter-shaped slots
        return NamedSharding(mesh, P(None, *s.spec))
    return replicated(mesh)
  return jax.tree_util.tree_map_with_path(one, tree)


def state_shardings(abstract_state, boxed_params, mesh, rules) -> Any:
  """Shardings for a TrainState: params by their rules, optimizer state
  following them, step and rng replicated."""
  params = param_shardings(boxed_params, mesh, rules)
  opt_state = follow_params(abstract_state.opt_state, abstract_state.params,
                            params, mesh)
  return abstract_state.replace(
      step=replicated(mesh), params=params, opt_state=opt_state,
      rng=replicated(mesh))


def with_shardings(abstract_tree, shardings) -> Any:
  """ShapeDtypeStructs that carry `shardings`: restore targets for orbax."""
  return jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
      abstract_tree, shardings)


def replicated_share(params, shardings) -> tuple[float, list[tuple[str, int]]]:
  """The share of parameter bytes every device holds in full, and the
  replicated parameters (name, bytes), largest first."""
  total, rep = 0, []
  flat_p = flax.traverse_util.flatten_dict(params, sep="/")
  flat_s = flax.traverse_util.flatten_dict(shardings, sep="/")
  for name, p in flat_p.items():
    nbytes = int(np.prod(np.shape(p))) * np.dtype(p.dtype).itemsize
    total += nbytes
    if flat_s[name].is_fully_replicated:
      rep.append((name, nbytes))
  rep.sort(key=lambda x: -x[1])
  return sum(b for _, b in rep) / max(total, 1), rep


def check_replication(params, shardings, mesh, max_share: float) -> float:
  """Raises ValueError when more than `max_share` of the parameter bytes
  is replicated although the mesh has axes (fsdp, tensor) to split them.

  Returns the replicated share. On a mesh whose parameter axes all have
  size 1, replication is the intent (data parallelism) and nothing is
  checked.
  """
  share, rep = replicated_share(params, shardings)
  if mesh.shape.get("fsdp", 1) * mesh.shape.get("tensor", 1) == 1:
    return share
  listing = ", ".join(f"{n} ({b:,} B)" for n, b in rep[:5])
  if share > max_share:
    raise ValueError(
        f"{share:.0%} of the parameter bytes would be replicated on mesh "
        f"{dict(mesh.shape)}, more than config.max_replicated_share="
        f"{max_share}. Largest replicated: {listing}. Their dimensions are "
        "not divisible by the mesh axes their logical names map to (see "
        "config.axis_rules), or their names map to no axis.")
  if rep:
    logging.info("%.1f%% of parameter bytes replicated; largest: %s",
                 100 * share, listing)
  return share


def batch_sharding(mesh, rules, ndim: int = 1) -> NamedSharding:
  """Rows split over the batch axes, other dimensions whole."""
  axes = mesh_lib.batch_axes(rules)
  return NamedSharding(mesh, P(axes or None, *([None] * (ndim - 1))))


def batch_shards(mesh, rules) -> int:
  return axis_size(mesh, mesh_lib.batch_axes(rules) or None)


def check_batch_size(batch_size: int, mesh, rules, what: str) -> None:
  n = batch_shards(mesh, rules)
  if batch_size % n:
    raise ValueError(
        f"{what} {batch_size} is not divisible by the {n} batch shards of "
        f"mesh {dict(mesh.shape)} (batch axes "
        f"{mesh_lib.batch_axes(rules)}).")


def global_batch(local_batch: dict[str, np.ndarray], mesh, rules
                 ) -> dict[str, jax.Array]:
  """Global arrays from this process's rows of a batch.

  Each process passes the rows it loaded (its 1/process_count share); the
  result spans every process's rows, split over the batch axes.
  """
  shardings = {k: batch_sharding(mesh, rules, np.ndim(v))
               for k, v in local_batch.items()}
  if jax.process_count() == 1:
    # The local rows are the whole batch: one transfer for every array
    # (half the host time per step of an array-by-array assembly, which
    # on small models is a large share of the step).
    return jax.device_put(dict(local_batch), shardings)
  return {k: jax.make_array_from_process_local_data(shardings[k],
                                                    np.asarray(v))
          for k, v in local_batch.items()}


def replicated_batch(batch: dict[str, np.ndarray], mesh, rules
                     ) -> dict[str, jax.Array]:
  """Global arrays from a batch that every process holds in full (eval)."""
  def one(v):
    v = np.asarray(v)
    return jax.make_array_from_callback(
        v.shape, batch_sharding(mesh, rules, v.ndim), lambda idx: v[idx])
  return {k: one(v) for k, v in batch.items()}
