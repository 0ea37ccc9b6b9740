"""The family of small training problems the gradient transformer learns on.

A task is a model, a data set held on device and a loss, described by a
plain dict (so configs can list them):

    {"name": "mnist1d_mlp", "data": {"name": "mnist1d"},
     "model": {"name": "mlp", "hidden": (64, 64)}, "batch_size": 64,
     "loss": "xent"}

`loss="mse"` makes a regression task: targets are a fixed random teacher
network's outputs on the inputs (so any classification data set's inputs
serve), and the model's `num_classes` outputs regress them.

Everything a task does is pure and jittable: `init(key)` draws parameters,
`batch(key)` draws a batch from the on-device arrays, `loss(params, batch)`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel import data as data_lib
from accel import models
from accel.errors import ConfigError
from accel.train import build as build_lib
from accel.train import config as config_lib

_REQUIRED = ("name", "data", "model", "batch_size")
_OPTIONAL = {"loss": "xent", "regression_outputs": 4}


class Task(NamedTuple):
  name: str
  init: Callable[[jax.Array], Any]
  batch: Callable[[jax.Array, Any], dict[str, jax.Array]]
  loss: Callable[[Any, dict[str, jax.Array]], jax.Array]
  arrays: dict[str, jax.Array]  # the training split, passed to batch()
  eval_arrays: dict[str, jax.Array] | None = None  # the test split
  # Rows each kernel multiplies a step ({path: rows}, accel.train.build.
  # kernel_rows), or one count for every kernel.
  rows_per_step: Any = 0


def _teacher_targets(x_NxD: np.ndarray, outputs: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  x = x_NxD.reshape(len(x_NxD), -1).astype(np.float32)
  x = (x - x.mean(0)) / (x.std(0) + 1e-6)
  w1 = rng.normal(size=(x.shape[1], 32)) / np.sqrt(x.shape[1])
  w2 = rng.normal(size=(32, outputs)) / np.sqrt(32)
  return (np.tanh(x @ w1) @ w2).astype(np.float32)


def _model_config(spec: dict[str, Any]):
  """A config with the task's model section and the default precision, the
  shape accel.train.build.make_model takes."""
  c = config_lib.base_config()
  c.model = dict(spec["model"])
  return c


def make_task(spec: dict[str, Any]) -> Task:
  """Builds the task that `spec` describes (see the module docstring)."""
  spec = dict(spec)
  missing = [k for k in _REQUIRED if k not in spec]
  unknown = set(spec) - set(_REQUIRED) - set(_OPTIONAL)
  if missing or unknown:
    raise ConfigError(
        f"meta-training task {spec.get('name', spec)!r}: missing keys "
        f"{missing}, unknown keys {sorted(unknown)}; expected "
        f"{list(_REQUIRED)} and optionally {sorted(_OPTIONAL)}.")
  opts = {k: spec.get(k, v) for k, v in _OPTIONAL.items()}
  if opts["loss"] not in ("xent", "mse"):
    raise ConfigError(f"task {spec['name']!r}: loss must be 'xent' or 'mse', "
                      f"got {opts['loss']!r}.")
  source = data_lib.make_source(dict(spec["data"]))
  if not hasattr(source, "arrays"):
    raise ConfigError(f"task {spec['name']!r}: data set "
                      f"{spec['data']['name']!r} is not held in memory; "
                      "meta-training needs an in-memory source.")
  model_spec = source.spec
  if opts["loss"] == "mse":
    model_spec = dataclasses.replace(model_spec,
                                     num_classes=opts["regression_outputs"])

  def split(name):
    raw = source.arrays(name)
    out = {"inputs": jnp.asarray(raw["inputs"])}
    if opts["loss"] == "mse":
      out["target"] = jnp.asarray(_teacher_targets(
          raw["inputs"], opts["regression_outputs"]))
    else:
      out["label"] = jnp.asarray(raw["label"])
      if "label_mask" in raw:
        out["label_mask"] = jnp.asarray(raw["label_mask"])
    return out
  arrays, eval_arrays = split("train"), split("test")
  model: nn.Module = build_lib.make_model(_model_config(spec), model_spec)
  batch_size = int(spec["batch_size"])
  dummy = models.dummy_inputs(model_spec, 2)

  def init(key):
    variables = model.init(key, dummy, train=False)
    return nn.meta.unbox(variables["params"])

  def batch(key, arrays):
    num = int(jax.tree.leaves(arrays)[0].shape[0])
    idx_B = jax.random.randint(key, (batch_size,), 0, num)
    return {k: v[idx_B] for k, v in arrays.items()}

  def loss(params, b):
    out = model.apply({"params": params}, b["inputs"], train=False)
    if opts["loss"] == "mse":
      return jnp.mean(jnp.square(out - b["target"]))
    labels = b["label"].reshape(out.shape[0], -1)
    out = out.reshape(labels.shape[0], labels.shape[1], -1)
    losses = optax.softmax_cross_entropy_with_integer_labels(out, labels)
    w = b.get("label_mask", jnp.ones(labels.shape)).reshape(labels.shape)
    return jnp.sum(losses * w) / jnp.maximum(jnp.sum(w), 1.0)

  return Task(spec["name"], init, batch, loss, arrays, eval_arrays,
              build_lib.optimizer_rows(model, model_spec, batch_size))
