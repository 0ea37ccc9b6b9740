"""Shardings for the train state and the batches, from logical axis names.

Parameters get theirs from the logical names the models attach (see
`accel.models.layers`) and `config.axis_rules`. A dimension that the mesh
axes do not divide is left unsplit rather than padded. Optimizer state
follows the parameters: every copy of the parameter tree in it (moments,
traces) is sharded like the parameters; everything else (counts,
per-tensor statistics, the learned optimizers' small networks) is replicated.
Which state leaves are copies of the parameters is the optimizer's own
answer (`optax.tree_map_params` runs its `init` on a placeholder).
"""

from __future__ import annotations

import math
from typing import Any

from absl import logging
import flax
import flax.linen as nn
import jax
import numpy as np
import optax

from accel.errors import ConfigError
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


def opt_state_shardings(tx, opt_state, param_shardings, mesh) -> Any:
  """Shardings for `tx`'s state `opt_state` (arrays or shapes): every copy
  of the parameter tree in it (found by `optax.tree_map_params`) like the
  parameters, the rest replicated over `mesh`."""
  rep = replicated(mesh)
  # A masked-out leaf (optax.masked) holds no array: it stays as it is.
  masked = lambda x: isinstance(x, optax.MaskedNode)
  return optax.tree_map_params(
      tx, lambda leaf, s: leaf if masked(leaf) else s, opt_state,
      param_shardings,
      transform_non_params=lambda tree: jax.tree.map(lambda _: rep, tree),
      is_leaf=masked)


def example_table_sharding(shape, mesh, rules) -> NamedSharding:
  """A per-training-example table (first axis: examples) split over the
  batch axes like the batch, or replicated where its length does not
  divide by them."""
  axes = mesh_lib.batch_axes(rules)
  spec = P(axes or None, *([None] * (len(shape) - 1)))
  return NamedSharding(mesh, fit_spec(spec, shape, mesh))


def state_shardings(abstract_state, boxed_params, mesh, rules, tx) -> Any:
  """Shardings for a TrainState: params by their rules, the optimizer
  state of `tx` following them (opt_state_shardings), step and rng
  replicated, selection tables split over the batch axes, pruning masks
  like the parameters."""
  params = param_shardings(boxed_params, mesh, rules)
  rep = replicated(mesh)
  return abstract_state.replace(
      step=rep, params=params,
      opt_state=opt_state_shardings(tx, abstract_state.opt_state, params,
                                    mesh),
      rng=rep,
      selection=jax.tree.map(
          lambda a: example_table_sharding(a.shape, mesh, rules),
          abstract_state.selection),
      masks=None if abstract_state.masks is None else params)


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
    raise ConfigError(
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
    raise ConfigError(
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
  # An explicit copy of this process's rows (allowed under a guard).
  with jax.transfer_guard_host_to_device("allow"):
    return {k: jax.make_array_from_process_local_data(shardings[k],
                                                      np.asarray(v))
            for k, v in local_batch.items()}


def replicated_batch(batch: dict[str, np.ndarray], mesh, rules
                     ) -> dict[str, jax.Array]:
  """Global arrays from a batch that every process holds in full (eval).

  An explicit host-to-device copy: allowed under a transfer guard.
  """
  shardings = {k: batch_sharding(mesh, rules, np.ndim(v))
               for k, v in batch.items()}
  if jax.process_count() == 1:
    return jax.device_put(dict(batch), shardings)

  def one(k, v):
    v = np.asarray(v)
    return jax.make_array_from_callback(v.shape, shardings[k],
                                        lambda idx: v[idx])
  # Each process copies the slices its devices hold; that is the transfer
  # this function is for.
  with jax.transfer_guard_host_to_device("allow"):
    return {k: one(k, v) for k, v in batch.items()}
