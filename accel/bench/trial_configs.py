"""The training configs of a benchmark suite's trials: a workload's config
file with its overrides, and a method's optimizer, learning rate and seed
written into it.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections

from accel.errors import ConfigError
from accel.train import config as config_lib

# Where workload configs are looked up unless a workload names its own
# `config_dir`: the checkout's configs/, relative to the working directory
# (every command runs from the checkout's root). Suite configs set
# `config_dir` from their own location (workloads.set_config_dir).
DEFAULT_CONFIG_DIR = "configs"


def load_config(name: str, overrides: dict[str, Any],
                config_dir: str = DEFAULT_CONFIG_DIR):
  """<config_dir>/<file>.py[:variant] with overrides applied.

  `overrides` maps keys to values; nested dicts reach into sections
  ({"model": {"channels": (32, 32)}}), as do dotted keys ("model.channels").
  """
  file, _, variant = name.partition(":")
  path = os.path.join(config_dir, file + ".py")
  if not os.path.exists(path):
    raise ConfigError(f"workload config {path!r} does not exist.")
  c = config_lib.load_file(path + (":" + variant if variant else ""))
  return apply_overrides(c, overrides, name)


def apply_overrides(c, overrides: dict[str, Any], name: str):
  """`overrides` (nested dicts or dotted keys) written into config `c`."""
  for key, value in _flatten(overrides):
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    if leaf not in node:
      raise ConfigError(f"override {key!r}: {leaf!r} is not a key of the "
                        f"config {name!r}; keys are {sorted(node.keys())}.")
    node[leaf] = value
  return c


def _flatten(overrides, prefix=""):
  for key, value in dict(overrides).items():
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      yield from _flatten(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value


def workload_config(workload):
  """The training config a workload names, with its overrides."""
  return load_config(workload.config, dict(workload.get("overrides", {})),
                     workload.get("config_dir", DEFAULT_CONFIG_DIR))


def trial_config(workload, method, lr: float, seed: int):
  """The config of one trial: the workload's, with the method's optimizer
  at learning rate `lr`, its overrides, and `seed`."""
  c = workload_config(workload)
  optim = ml_collections.ConfigDict(dict(c.optim))
  # The method replaces the optimizer; schedule and warm-up stay the
  # workload's so every method gets the same schedule.
  keep = {k: optim[k] for k in ("schedule", "warmup_steps", "end_lr_factor",
                                "grad_clip_norm", "decay_mask")
          if k in optim}
  section = dict(method.optim)
  section.update({k: v for k, v in keep.items() if k not in section})
  section["learning_rate"] = lr
  with c.unlocked():
    c.optim = ml_collections.ConfigDict(section)
    c.seed = seed
    c.progress_bar = False
  # The method's other settings (batch selection, steps), and a batch
  # `batch_multiplier` times the workload's.
  c = apply_overrides(c, dict(method.get("overrides", {})), workload.config)
  c.batch_size = int(c.batch_size * method.get("batch_multiplier", 1))
  return c
