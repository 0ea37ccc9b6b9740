"""What a sweep searches: distributions over config keys, the metric and its
direction, the sampler and the pruner.

A sweep file defines `get_sweep()`:

  from accel import sweep

  def get_sweep():
    return sweep.Sweep(
        space={"optim.learning_rate": sweep.LogUniform(1e-4, 1e-1),
               "optim.name": sweep.Categorical(("adamw", "nadamw")),
               "model.channels": sweep.Categorical(((32, 32), (64, 64)))},
        metric="accuracy", direction="maximize", trials=20)

Keys are dotted paths into the run's config. A `.name` key of `data`,
`model` or `optim` swaps the whole section for the named builder's, keeping
the options the new builder also accepts. Each distribution may carry the
`grid` of values that the `grid` sampler walks.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import os
from typing import Any, Sequence

import ml_collections

from accel.errors import ConfigError
from accel.errors import MissingFileError
from accel.train import config as config_lib

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("successive_halving", "hyperband", "median", "none")
METRICS = ("accuracy", "loss", "worst_class_accuracy")
_SECTIONS = {"data": config_lib.data_section, "model": config_lib.model_section,
             "optim": config_lib.optim_section}


@dataclasses.dataclass(frozen=True)
class LogUniform:
  low: float
  high: float
  grid: Sequence[float] = ()

  def __post_init__(self):
    if not 0 < self.low < self.high:
      raise ConfigError(f"LogUniform needs 0 < low < high, got low={self.low}"
                        f", high={self.high}.")

  def suggest(self, trial, name: str):
    return trial.suggest_float(name, self.low, self.high, log=True)


@dataclasses.dataclass(frozen=True)
class Uniform:
  low: float
  high: float
  grid: Sequence[float] = ()

  def __post_init__(self):
    if not self.low < self.high:
      raise ConfigError(f"Uniform needs low < high, got low={self.low}, "
                        f"high={self.high}.")

  def suggest(self, trial, name: str):
    return trial.suggest_float(name, self.low, self.high)


@dataclasses.dataclass(frozen=True)
class Int:
  low: int
  high: int
  log: bool = False
  grid: Sequence[int] = ()

  def __post_init__(self):
    if not self.low <= self.high or (self.log and self.low < 1):
      raise ConfigError(f"Int needs low <= high (and low >= 1 with log), got "
                        f"low={self.low}, high={self.high}, log={self.log}.")

  def suggest(self, trial, name: str):
    return trial.suggest_int(name, self.low, self.high, log=self.log)


@dataclasses.dataclass(frozen=True)
class Categorical:
  """Any values: numbers, strings, tuples (Optuna stores an index)."""
  choices: Sequence[Any]

  def __post_init__(self):
    if not self.choices:
      raise ConfigError("Categorical needs at least one choice.")

  @property
  def grid(self):
    return tuple(self.choices)

  def suggest(self, trial, name: str):
    index = trial.suggest_categorical(name, list(range(len(self.choices))))
    return self.choices[index]


Distribution = LogUniform | Uniform | Int | Categorical


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A search space over config keys and how to search it.

  metric: a key of the run's evaluation (accuracy, loss,
  worst_class_accuracy), reported at every periodic evaluation and at the
  end; direction: maximize or minimize; trials: finished trials to reach
  (pruned ones count); sampler: tpe, random, grid (each distribution's
  `grid`) or cmaes (needs the `cmaes` package); pruner:
  successive_halving, hyperband, median or none; pruner_options: keyword
  arguments of the Optuna pruner; seed: the sampler's.
  """
  space: dict[str, Distribution]
  metric: str = "accuracy"
  direction: str = "maximize"
  trials: int = 20
  sampler: str = "tpe"
  pruner: str = "successive_halving"
  pruner_options: dict[str, Any] = dataclasses.field(default_factory=dict)
  seed: int = 0

  def __post_init__(self):
    if not self.space:
      raise ConfigError("A sweep needs at least one key in its space.")
    for key, dist in self.space.items():
      if not isinstance(dist, (LogUniform, Uniform, Int, Categorical)):
        raise ConfigError(
            f"sweep space key {key!r}: {dist!r} is not a distribution; use "
            "sweep.LogUniform, Uniform, Int or Categorical.")
    _one_of("metric", self.metric, METRICS)
    _one_of("direction", self.direction, ("maximize", "minimize"))
    _one_of("sampler", self.sampler, SAMPLERS)
    _one_of("pruner", self.pruner, PRUNERS)
    if self.trials < 1:
      raise ConfigError(f"sweep trials must be >= 1, got {self.trials}.")
    if self.sampler == "grid":
      empty = [k for k, d in self.space.items() if not d.grid]
      if empty:
        raise ConfigError(f"The grid sampler needs a `grid` for every key; "
                          f"{empty[0]!r} has none.")

  def identity(self) -> dict[str, str]:
    """What makes two sweeps the same search (the trial count and the
    budget may change between invocations; these may not)."""
    return {"space": repr(sorted(self.space.items())), "metric": self.metric,
            "direction": self.direction, "sampler": self.sampler,
            "pruner": f"{self.pruner} {sorted(self.pruner_options.items())}",
            "seed": str(self.seed)}

  def grid_size(self) -> int:
    size = 1
    for dist in self.space.values():
      size *= len(dist.grid)
    return size

  def grid_space(self) -> dict[str, list]:
    """The grid sampler's search space, in Optuna's stored values."""
    return {k: (list(range(len(d.choices))) if isinstance(d, Categorical)
                else list(d.grid)) for k, d in self.space.items()}


def _one_of(what: str, value, accepted) -> None:
  if value not in accepted:
    raise ConfigError(f"sweep {what} must be one of {list(accepted)}, got "
                      f"{value!r}.")


def load(path_and_variant: str) -> Sweep:
  """The Sweep that `get_sweep()` of a file returns; `file.py:variant`
  passes the variant to `get_sweep(variant)`, as config files take
  theirs."""
  path, colon, variant = path_and_variant.partition(":")
  if not os.path.exists(path):
    raise MissingFileError(f"sweep file {path!r} does not exist.")
  spec = importlib.util.spec_from_file_location("accel_sweep_file", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_sweep"):
    raise ConfigError(f"sweep file {path!r} defines no get_sweep().")
  found = module.get_sweep(variant) if colon else module.get_sweep()
  if not isinstance(found, Sweep):
    raise ConfigError(f"get_sweep() in {path!r} returned "
                      f"{type(found).__name__}, expected accel.sweep.Sweep.")
  return found


def suggest(trial, sweep: Sweep) -> dict[str, Any]:
  """{key: value} for one trial (its `.name` keys first)."""
  return {key: sweep.space[key].suggest(trial, key)
          for key in sorted(sweep.space, key=lambda k: not k.endswith(".name"))}


def apply(config: ml_collections.ConfigDict, params: dict[str, Any]
          ) -> ml_collections.ConfigDict:
  """A copy of `config` with each dotted key set to its value.

  An unknown key is an error naming the keys that exist there, with a
  did-you-mean; a `data.name`, `model.name` or `optim.name` builds that
  builder's section, keeping the options both builders accept.
  """
  out = ml_collections.ConfigDict(config.to_dict())
  for key in sorted(params, key=lambda k: not k.endswith(".name")):
    value = params[key]
    *parents, leaf = key.split(".")
    node = out
    for i, part in enumerate(parents):
      node = _child(node, part, ".".join(parents[:i + 1]), key)
    if leaf not in node:
      close = difflib.get_close_matches(leaf, list(node.keys()), n=1)
      hint = f" Did you mean {close[0]!r}?" if close else ""
      where = ".".join(parents) or "the top level"
      raise ConfigError(f"sweep key {key!r}: {where} has no key {leaf!r}."
                        f"{hint} It has: {sorted(node.keys())}.")
    if leaf == "name" and len(parents) == 1 and parents[0] in _SECTIONS:
      out[parents[0]] = _renamed(parents[0], out[parents[0]], value)
      continue
    if isinstance(value, (list, tuple)):
      value = tuple(value)
    try:
      node[leaf] = value
    except TypeError as e:
      raise ConfigError(
          f"sweep key {key!r}: cannot set {value!r} "
          f"({type(value).__name__}) where the config holds "
          f"{node[leaf]!r} ({type(node[leaf]).__name__}).") from e
  return out


def _child(node, part: str, path: str, key: str):
  if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
    raise ConfigError(f"sweep key {key!r}: config has no section {path!r}.")
  return node[part]


def _renamed(section: str, old: ml_collections.ConfigDict, name: str):
  """`section` built for builder `name`, with the old options it accepts."""
  fresh = _SECTIONS[section](name)
  kept = {k: old[k] for k in old.keys() if k != "name" and k in fresh}
  return _SECTIONS[section](name, **kept)
