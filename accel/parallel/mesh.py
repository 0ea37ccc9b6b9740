"""The device mesh and the rules that map logical axis names onto it.

`config.mesh` names the axes and their sizes, -1 meaning "the devices left":

    config.mesh = (("data", -1), ("fsdp", 1), ("tensor", 1))   # data parallel
    config.mesh = (("data", 2), ("fsdp", 4), ("tensor", 1))    # FSDP over 4
    config.mesh = (("data", 1), ("fsdp", 2), ("tensor", 4))    # + tensor par.

`config.axis_rules` maps the logical names the models give their parameters
(T5X/MaxText names) to mesh axes. With the defaults below the batch is split
over `data` and `fsdp`; parameters and optimizer state are split over `fsdp`
along `embed` and over `tensor` along `mlp`, `heads` and `vocab`. A mesh axis
of size 1 shards nothing, so the one rule set serves every mesh shape.
"""

from __future__ import annotations

from typing import Sequence
import warnings

import jax
import numpy as np

from accel.errors import ConfigError

AXES = ("data", "fsdp", "tensor")
DEFAULT_MESH = (("data", -1), ("fsdp", 1), ("tensor", 1))
BATCH_AXES = ("data", "fsdp")
DEFAULT_AXIS_RULES = (
    ("batch", BATCH_AXES),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("vocab", "tensor"),
    ("kv", None),
    ("length", None),
)


def check_mesh_axes(axes: Sequence[Sequence]) -> dict[str, int]:
  """`{axis: size}` as written (-1 kept); raises ValueError for a bad mesh."""
  axes = [tuple(a) for a in axes]
  if any(len(a) != 2 for a in axes):
    raise ConfigError(f"config.mesh must be a sequence of (name, size) pairs, "
                      f"got {axes!r}.")
  names = [name for name, _ in axes]
  if sorted(names) != sorted(AXES):
    raise ConfigError(f"config.mesh must name each of the axes {AXES} once, "
                      f"got {names}.")
  sizes = {name: int(size) for name, size in axes}
  if any(s == 0 or s < -1 for s in sizes.values()):
    raise ConfigError(f"mesh axis sizes must be positive or -1, got {sizes}.")
  free = [n for n, s in sizes.items() if s == -1]
  if len(free) > 1:
    raise ConfigError(f"only one mesh axis may be -1, got {free}.")
  return {name: sizes[name] for name in names}


def mesh_shape(axes: Sequence[Sequence], num_devices: int) -> dict[str, int]:
  """`{axis: size}` with -1 resolved; raises ValueError for a bad mesh."""
  sizes = check_mesh_axes(axes)
  free = [n for n, s in sizes.items() if s == -1]
  fixed = int(np.prod([s for s in sizes.values() if s != -1]))
  if free:
    if num_devices % fixed:
      raise ConfigError(
          f"config.mesh {sizes} cannot fill {num_devices} devices: the fixed "
          f"axes multiply to {fixed}, which does not divide {num_devices}.")
    sizes[free[0]] = num_devices // fixed
  elif fixed > num_devices:
    raise ConfigError(f"config.mesh {sizes} needs {fixed} devices; "
                      f"{num_devices} are available.")
  return sizes


def make_mesh(axes: Sequence[Sequence] = DEFAULT_MESH,
              devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
  """The mesh `config.mesh` describes, over `devices` (default: all).

  A mesh smaller than the devices available uses the first ones, which lets
  a single-process run (a test, a notebook) train on 1 of 8 devices; with
  several processes the mesh must cover every device.
  """
  devices = list(jax.devices() if devices is None else devices)
  sizes = mesh_shape(axes, len(devices))
  needed = int(np.prod(list(sizes.values())))
  if needed < len(devices):
    if jax.process_count() > 1:
      raise ConfigError(
          f"config.mesh {sizes} uses {needed} of the {len(devices)} devices; "
          "with several processes the mesh must span all of them (use -1).")
    idle = [d.id for d in devices[needed:]]
    warnings.warn(
        f"config.mesh {sizes} uses {needed} of the {len(devices)} devices; "
        f"devices {_ranges(idle)} stay idle. Give one axis -1 to use them "
        "all.", stacklevel=2)
    devices = devices[:needed]
  # Auto axes: shardings are given at jit boundaries and propagated inside.
  types = (jax.sharding.AxisType.Auto,) * len(sizes)
  return jax.make_mesh(tuple(sizes.values()), tuple(sizes), axis_types=types,
                       devices=devices)


def _ranges(ids: list[int]) -> str:
  """[3, 4, 5, 7] -> "3-5, 7"."""
  out, start = [], None
  for i, x in enumerate(ids):
    if start is None:
      start = x
    if i + 1 == len(ids) or ids[i + 1] != x + 1:
      out.append(str(start) if start == x else f"{start}-{x}")
      start = None
  return ", ".join(out)


def check_axis_rules(rules) -> tuple[tuple[str, str | tuple[str, ...] | None],
                                     ...]:
  """The rules as tuples; raises ValueError for an unknown mesh axis."""
  out = []
  for rule in rules:
    if len(rule) != 2:
      raise ConfigError(f"each axis rule is (logical name, mesh axes), got "
                        f"{rule!r}.")
    logical, target = rule
    targets = _axis_names(target)
    unknown = [t for t in targets if t not in AXES]
    if unknown:
      raise ConfigError(f"axis rule {rule!r} names mesh axis {unknown[0]!r}; "
                        f"mesh axes are {AXES}.")
    out.append((logical, target if isinstance(target, str) or target is None
                else tuple(target)))
  return tuple(out)


def batch_axes(rules) -> tuple[str, ...]:
  """The mesh axes the batch dimension is split over."""
  for logical, target in rules:
    if logical == "batch":
      return _axis_names(target)
  return ()


def _axis_names(target) -> tuple[str, ...]:
  """A rule's target (an axis name, a sequence of them, or None) as a
  tuple of names."""
  return (target,) if isinstance(target, str) else tuple(target or ())
