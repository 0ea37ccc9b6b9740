"""The attention network inside the gradient transformer (gt_transform),
and its weights files.

Tokens are parameter tensors. Each carries a window of `history` steps of
per-tensor features (cosines and ratios only: nothing that depends on the
scale of the loss, the parameters or the gradients, and no horizon). The
network attends across time within each tensor, then across the tensors
and one global token (the loss history, as log-ratios to the newest loss),
and emits per tensor one raw coefficient for each correction direction
(`gt_transform.DIRECTIONS`). Its output layer starts at zero, so an
untrained network leaves the base update exactly as it is.

Shapes: T tensors, H history steps, F features a step, S static features,
G global features, D width, K outputs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from accel.errors import ConfigError, MissingFileError

NUM_STEP_FEATURES = 6
NUM_STATIC_FEATURES = 3
NUM_OUTPUTS = 2
FORMAT_VERSION = 2
KIND = "learned_direction"  # the design's name when format 2 began


@dataclasses.dataclass(frozen=True)
class Architecture:
  """Everything a weights file must agree on to be loaded."""
  history: int = 8
  width: int = 16
  num_heads: int = 2
  mlp_ratio: int = 2

  def as_dict(self) -> dict[str, int]:
    return dataclasses.asdict(self)


class AttentionBlock(nn.Module):
  """Pre-LayerNorm self-attention and MLP over axis -2 (the tokens)."""
  num_heads: int
  mlp_ratio: int

  @nn.compact
  def __call__(self, x_BxNxD):
    d = x_BxNxD.shape[-1]
    y = nn.LayerNorm()(x_BxNxD)
    x_BxNxD = x_BxNxD + nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads)(y, y)
    y = nn.LayerNorm()(x_BxNxD)
    y = nn.Dense(d * self.mlp_ratio)(y)
    return x_BxNxD + nn.Dense(d)(nn.gelu(y))


class DirectionNet(nn.Module):
  """(window T x H x F, static T x S, global G) -> raw outputs T x K."""
  arch: Architecture

  @nn.compact
  def __call__(self, steps_TxHxF, static_TxS, global_G):
    a = self.arch
    h = steps_TxHxF.shape[1]
    x_TxHxD = nn.Dense(a.width, name="embed_steps")(steps_TxHxF)
    time_HxD = self.param("time_embedding", nn.initializers.normal(0.02),
                          (a.history, a.width))
    x_TxHxD = AttentionBlock(a.num_heads, a.mlp_ratio, name="over_time")(
        x_TxHxD + time_HxD[None, -h:])
    x_TxD = x_TxHxD[:, -1] + nn.Dense(a.width, name="embed_static")(
        static_TxS)
    g_1xD = nn.Dense(a.width, name="embed_global")(global_G)[None]
    tokens_NxD = jnp.concatenate([g_1xD, x_TxD], axis=0)
    tokens_NxD = AttentionBlock(a.num_heads, a.mlp_ratio,
                                name="over_tensors")(tokens_NxD[None])[0]
    y_TxD = nn.LayerNorm(name="final_norm")(tokens_NxD[1:])
    return nn.Dense(NUM_OUTPUTS, kernel_init=nn.initializers.zeros,
                    name="head")(y_TxD)


def num_global_features(history: int) -> int:
  return 2 * history


def init_weights(arch: Architecture, seed: int = 0):
  """Fresh weights; the head is zero, so the update is the base's."""
  return _init_weights(arch, jax.random.PRNGKey(seed))


# One compiled program per architecture (op by op, an init took 0.8 s).
@functools.partial(jax.jit, static_argnums=0)
def _init_weights(arch: Architecture, key):
  return DirectionNet(arch).init(
      key, jnp.zeros((2, arch.history, NUM_STEP_FEATURES)),
      jnp.zeros((2, NUM_STATIC_FEATURES)),
      jnp.zeros((num_global_features(arch.history),)))["params"]


def infer_architecture(params) -> Architecture:
  """The architecture a weights pytree was made for, read off its shapes."""
  try:
    history, width = params["time_embedding"].shape
    heads = params["over_time"]["MultiHeadDotProductAttention_0"]["query"][
        "kernel"].shape[1]
    hidden = params["over_time"]["Dense_0"]["kernel"].shape[1]
  except (KeyError, TypeError, IndexError, ValueError) as e:
    raise ConfigError("the given weights pytree is not gradient-transformer "
                      f"weights (cannot read its architecture: {e!r}).") from e
  return Architecture(history=int(history), width=int(width),
                      num_heads=int(heads), mlp_ratio=int(hidden // width))


def _shapes(tree):
  return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(v.shape)
          for path, v in jax.tree_util.tree_leaves_with_path(tree)}


def check_weights(params, arch: Architecture, origin: str = "weights"):
  """Raises ConfigError naming every leaf whose shape differs from arch's."""
  expected = _shapes(jax.eval_shape(lambda: init_weights(arch)))
  got = _shapes(params)
  problems = [f"{n}: expected {expected.get(n)}, got {got.get(n)}"
              for n in sorted(set(expected) | set(got))
              if expected.get(n) != got.get(n)]
  if problems:
    raise ConfigError(f"{origin} do not fit the gradient transformer's network "
                      f"{arch.as_dict()}:\n  " + "\n  ".join(problems[:10]))


def save_weights(path: str, params, arch: Architecture,
                 metadata: dict[str, Any] | None = None) -> None:
  """Writes weights, architecture and metadata as one msgpack file."""
  payload = {"format_version": FORMAT_VERSION, "kind": KIND,
             "architecture": arch.as_dict(),
             "metadata": json.dumps(metadata or {}),
             "params": jax.tree.map(np.asarray, params)}
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    f.write(serialization.msgpack_serialize(payload))


def load_weights(path: str) -> tuple[Any, Architecture, dict[str, Any]]:
  """Reads a file written by `save_weights`: (params, architecture, meta).

  Files of the first gradient transformer (format version 1) are refused by
  name: their network emitted learning-rate multipliers, which this design
  does not have.
  """
  if not os.path.exists(path):
    raise MissingFileError(f"gradient-transformer weights file {path!r} does "
                           "not exist.")
  with open(path, "rb") as f:
    try:
      payload = serialization.msgpack_restore(f.read())
    except Exception as e:  # msgpack raises several types
      raise ConfigError(f"{path!r} is not a weights file "
                        f"({type(e).__name__}: {e}).") from e
  if not isinstance(payload, dict) or "architecture" not in payload:
    raise ConfigError(f"{path!r} is not a weights file (no 'architecture' "
                      "entry).")
  version = int(payload.get("format_version", -1))
  if version != FORMAT_VERSION or payload.get("kind") != KIND:
    what = (" (the first gradient transformer's, which set learning-rate "
            "multipliers)" if version == 1 else "")
    raise ConfigError(
        f"{path!r} holds weights format version {version}{what}; this "
        f"gradient transformer reads version {FORMAT_VERSION}. Meta-train new "
        "weights with launch/meta_train.py.")
  known = {f.name for f in dataclasses.fields(Architecture)}
  arch_dict = {k: int(v) for k, v in payload["architecture"].items()}
  if set(arch_dict) - known:
    raise ConfigError(f"{path!r} has unknown architecture keys "
                      f"{sorted(set(arch_dict) - known)}; expected "
                      f"{sorted(known)}.")
  arch = Architecture(**arch_dict)
  params = jax.tree.map(jnp.asarray, payload["params"])
  check_weights(params, arch, origin=f"weights in {path!r}")
  return params, arch, json.loads(payload.get("metadata", "{}") or "{}")
