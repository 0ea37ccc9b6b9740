"""The small transformer inside the gradient transformer, and its weights files.

Tokens are parameter tensors. Each token carries a window of `history` steps
of summary features; the network attends across time within each tensor,
then across tensors (plus one global token holding the loss history), and
emits per-tensor raw outputs:

    out_TxO[:, 0]      log learning-rate multiplier (before bounding)
    out_TxO[:, 1]      log weight-decay multiplier (before bounding)
    out_TxO[:, 2:]     mixing weights of the extra update directions

The output layer starts at zero, so an untrained network emits zeros, which
the transform maps to exactly AdamW's update.

Shapes: T tensors, H history steps, F features per step, S static features,
G global features, D width, O outputs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from accel.errors import ConfigError
from accel.errors import MissingFileError
from accel.optim import direction_network

NUM_STEP_FEATURES = 15  # 9 stored per step + 6 changes over the window
NUM_STATIC_FEATURES = 6
DIRECTIONS = ("nesterov", "slow_momentum", "rmsprop", "sign_momentum")
NUM_OUTPUTS = 2 + len(DIRECTIONS)
FORMAT_VERSION = 1
DEFAULT_WEIGHTS = os.path.join(os.path.dirname(__file__), "weights",
                               "gradient_transformer.msgpack")


@dataclasses.dataclass(frozen=True)
class Architecture:
  """Everything a weights file must agree on to be loaded."""
  history: int = 8
  width: int = 16
  num_heads: int = 2
  mlp_ratio: int = 2
  step_features: int = NUM_STEP_FEATURES
  static_features: int = NUM_STATIC_FEATURES
  outputs: int = NUM_OUTPUTS
  # Features and outputs are refreshed every `update_every` steps; the window
  # then spans history x update_every steps. Weights are trained for one.
  update_every: int = 4

  def as_dict(self) -> dict[str, int]:
    return dataclasses.asdict(self)


class GradientTransformerNet(nn.Module):
  """Features in, per-tensor raw outputs out (all float32)."""
  arch: Architecture

  @nn.compact
  def __call__(self, steps_TxHxF, static_TxS, global_G):
    a = self.arch
    t, h, _ = steps_TxHxF.shape
    x_TxHxD = nn.Dense(a.width, name="embed_steps")(steps_TxHxF)
    time_HxD = self.param("time_embedding", nn.initializers.normal(0.02),
                          (a.history, a.width))
    x_TxHxD = x_TxHxD + time_HxD[None, -h:]
    x_TxHxD = direction_network.AttentionBlock(
        a.num_heads, a.mlp_ratio, name="over_time")(x_TxHxD)
    # The newest step summarises the window for each tensor.
    x_TxD = x_TxHxD[:, -1] + nn.Dense(a.width, name="embed_static")(static_TxS)
    g_1xD = nn.Dense(a.width, name="embed_global")(global_G)[None]
    tokens_NxD = jnp.concatenate([g_1xD, x_TxD], axis=0)
    tokens_NxD = direction_network.AttentionBlock(
        a.num_heads, a.mlp_ratio, name="over_tensors")(tokens_NxD[None])[0]
    y_TxD = nn.LayerNorm(name="final_norm")(tokens_NxD[1:])
    del t
    return nn.Dense(a.outputs, kernel_init=nn.initializers.zeros,
                    name="head")(y_TxD)


def num_global_features(history: int) -> int:
  return 3 * history + 2


def init_weights(arch: Architecture, seed: int = 0, output_scale: float = 0.0):
  """Fresh weights. `output_scale` > 0 makes the head random (not AdamW)."""
  net = GradientTransformerNet(arch)
  steps = jnp.zeros((2, arch.history, arch.step_features))
  static = jnp.zeros((2, arch.static_features))
  glob = jnp.zeros((num_global_features(arch.history),))
  params = net.init(jax.random.PRNGKey(seed), steps, static, glob)["params"]
  if output_scale:
    key = jax.random.PRNGKey(seed + 1)
    kernel = params["head"]["kernel"]
    params["head"]["kernel"] = output_scale * jax.random.normal(
        key, kernel.shape, kernel.dtype)
  return params


def infer_architecture(params) -> Architecture:
  """The architecture a weights pytree was made for, read off its shapes."""
  try:
    history, width = params["time_embedding"].shape
    steps = params["embed_steps"]["kernel"].shape[0]
    static = params["embed_static"]["kernel"].shape[0]
    heads = params["over_time"]["MultiHeadDotProductAttention_0"]["query"][
        "kernel"].shape[1]
    hidden = params["over_time"]["Dense_0"]["kernel"].shape[1]
    outputs = params["head"]["kernel"].shape[1]
  except (KeyError, TypeError, IndexError, ValueError) as e:
    raise ConfigError("the given weights pytree is not gradient transformer "
                      f"weights (cannot read its architecture: {e!r}).") from e
  return Architecture(history=int(history), width=int(width),
                      num_heads=int(heads), mlp_ratio=int(hidden // width),
                      step_features=int(steps), static_features=int(static),
                      outputs=int(outputs))


def zero_head(params):
  """The same weights with the output layer at zero: exactly AdamW."""
  head = jax.tree.map(jnp.zeros_like, params["head"])
  return {**params, "head": head}


def _shapes(tree):
  return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(v.shape)
          for path, v in jax.tree_util.tree_leaves_with_path(tree)}


def check_weights(params, arch: Architecture, origin: str = "weights"):
  """Raises ValueError naming every leaf whose shape differs from `arch`'s."""
  expected = _shapes(jax.eval_shape(lambda: init_weights(arch)))
  got = _shapes(params)
  problems = []
  for name in sorted(set(expected) | set(got)):
    if expected.get(name) != got.get(name):
      problems.append(f"{name}: expected {expected.get(name)}, "
                      f"got {got.get(name)}")
  if problems:
    raise ConfigError(
        f"{origin} do not fit the gradient transformer architecture "
        f"{arch.as_dict()}:\n  " + "\n  ".join(problems[:10]))


def save_weights(path: str, params, arch: Architecture,
                 metadata: dict[str, Any] | None = None) -> None:
  """Writes weights and their architecture as one msgpack file."""
  payload = {"format_version": FORMAT_VERSION,
             "architecture": arch.as_dict(),
             "metadata": json.dumps(metadata or {}),
             "params": jax.tree.map(np.asarray, params)}
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    f.write(serialization.msgpack_serialize(payload))


def load_weights(path: str) -> tuple[Any, Architecture, dict[str, Any]]:
  """Reads a file written by `save_weights`: (params, architecture, meta)."""
  if not os.path.exists(path):
    raise MissingFileError(f"gradient transformer weights file {path!r} "
                            "does not exist.")
  with open(path, "rb") as f:
    try:
      payload = serialization.msgpack_restore(f.read())
    except Exception as e:  # msgpack raises several types
      raise ConfigError(f"{path!r} is not a gradient transformer weights file "
                        f"({type(e).__name__}: {e}).") from e
  if not isinstance(payload, dict) or "architecture" not in payload:
    raise ConfigError(f"{path!r} is not a gradient transformer weights file "
                      "(no 'architecture' entry).")
  version = int(payload.get("format_version", -1))
  if version != FORMAT_VERSION:
    raise ConfigError(f"{path!r} has weights format version {version}; this "
                      f"accel reads version {FORMAT_VERSION}.")
  known = {f.name for f in dataclasses.fields(Architecture)}
  arch_dict = {k: int(v) for k, v in payload["architecture"].items()}
  unknown = set(arch_dict) - known
  if unknown:
    raise ConfigError(f"{path!r} has unknown architecture keys "
                      f"{sorted(unknown)}; expected {sorted(known)}.")
  arch = Architecture(**arch_dict)
  params = jax.tree.map(jnp.asarray, payload["params"])
  check_weights(params, arch, origin=f"weights in {path!r}")
  return params, arch, json.loads(payload.get("metadata", "{}") or "{}")
