"""Pre-LayerNorm Transformers: an encoder classifier and a decoder-only LM.

The encoder reads token ids [B, L], 1-D signals [B, L, C] or images
[B, H, W, C] (cut into patches, ViT-style), prepends a learned class token
and classifies from it. The LM is causal and returns logits for every
position [B, L, vocab].
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from accel.errors import ConfigError
from accel.models import attention as attn
from accel.models import early_exit as exit_lib
from accel.models import layers
from accel.models import remat as remat_lib


class Block(nn.Module):
  num_heads: int
  mlp_dim: int
  dropout: float
  dtype: Any
  param_dtype: Any

  @nn.compact
  def __call__(self, x_BxLxD, mask, train: bool):
    drop = lambda y: nn.Dropout(self.dropout, deterministic=not train)(y)
    h = layers.layer_norm(self.dtype, self.param_dtype, name="norm1")(x_BxLxD)
    h = attn.MultiHeadAttention(self.num_heads, self.dtype, self.param_dtype,
                                name="attention")(h, h, mask)
    x_BxLxD = x_BxLxD + drop(remat_lib.tag(h, "attention_out"))
    h = layers.layer_norm(self.dtype, self.param_dtype, name="norm2")(x_BxLxD)
    h = layers.dense(self.mlp_dim, ("embed", "mlp"), self.dtype,
                     self.param_dtype, name="mlp_in")(h)
    h = remat_lib.tag(h, "mlp_hidden")
    h = layers.dense(x_BxLxD.shape[-1], ("mlp", "embed"), self.dtype,
                     self.param_dtype, name="mlp_out")(nn.gelu(h))
    return x_BxLxD + drop(remat_lib.tag(h, "mlp_out"))


class _Trunk(nn.Module):
  """Position embedding, the blocks (each under the `remat` policy,
  accel.models.remat), and a final LayerNorm."""
  num_layers: int
  num_heads: int
  mlp_dim: int
  dropout: float
  dtype: Any
  param_dtype: Any
  remat: str = "none"
  remat_names: tuple[str, ...] = ()
  collect: bool = False  # also return each block's output but the last

  @nn.compact
  def __call__(self, x_BxLxD, mask, train: bool):
    pos_1xLxD = self.param(
        "pos_embedding", layers.partitioned(nn.initializers.normal(0.02),
                                            (None, "length", "embed")),
        (1,) + x_BxLxD.shape[1:], self.param_dtype)
    x_BxLxD = x_BxLxD + pos_1xLxD.astype(self.dtype)
    # `train` (argument 3 after self) is a Python bool: static.
    block = remat_lib.wrap(Block, self.remat, self.remat_names,
                           static_argnums=(3,))
    hiddens = []
    for i in range(self.num_layers):
      x_BxLxD = block(self.num_heads, self.mlp_dim, self.dropout, self.dtype,
                      self.param_dtype, name=f"block{i}")(x_BxLxD, mask, train)
      hiddens.append(x_BxLxD)
    out = layers.layer_norm(self.dtype, self.param_dtype,
                            name="final_norm")(x_BxLxD)
    return (out, hiddens[:-1]) if self.collect else out


def _embed_tokens(vocab_size, width, dtype, param_dtype):
  return nn.Embed(vocab_size, width, dtype=dtype, param_dtype=param_dtype,
                  name="embed", embedding_init=layers.partitioned(
                      nn.initializers.normal(0.02), ("vocab", "embed")))


class TransformerClassifier(nn.Module):
  num_classes: int
  width: int = 64
  num_layers: int = 2
  num_heads: int = 4
  mlp_dim: int = 128
  patch_size: int = 4  # float inputs: patch length (1-D) or side (2-D)
  vocab_size: int = 0  # > 0: inputs are token ids
  dropout: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  remat: str = "none"  # per block: accel.models.remat
  remat_names: tuple[str, ...] = ()
  # Adaptive depth (accel.models.early_exit): an exit head after each block.
  early_exit: bool = False
  exit_threshold: float = 1.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.vocab_size:
      x_BxLxD = _embed_tokens(self.vocab_size, self.width, self.dtype,
                              self.param_dtype)(x)
    else:
      spatial = x.ndim - 2
      if spatial not in (1, 2):
        raise ConfigError(f"TransformerClassifier expects tokens [B, L], "
                          f"signals [B, L, C] or images [B, H, W, C]; got "
                          f"{x.shape}.")
      p = (self.patch_size,) * spatial
      x = layers.conv(self.width, p, self.dtype, self.param_dtype, strides=p,
                      name="patch_embed")(x.astype(self.dtype))
      x_BxLxD = x.reshape(x.shape[0], -1, self.width)
    cls_1x1xD = self.param(
        "cls", layers.partitioned(nn.initializers.zeros,
                                  (None, None, "embed")),
        (1, 1, self.width), self.param_dtype)
    cls_Bx1xD = jnp.broadcast_to(cls_1x1xD, (x_BxLxD.shape[0], 1, self.width))
    x_BxLxD = jnp.concatenate([cls_Bx1xD.astype(self.dtype), x_BxLxD], 1)
    out = _Trunk(self.num_layers, self.num_heads, self.mlp_dim,
                 self.dropout, self.dtype, self.param_dtype, self.remat,
                 tuple(self.remat_names), collect=self.early_exit,
                 name="trunk")(x_BxLxD, None, train)
    x_BxLxD, hiddens = out if self.early_exit else (out, [])
    final_BxC = layers.ClassifierHead(self.num_classes, self.dtype,
                                      self.param_dtype, name="classifier")(
                                          x_BxLxD[:, 0])
    if not self.early_exit:
      return final_BxC
    exits = [exit_lib.ExitHead(self.num_classes, self.dtype,
                               self.param_dtype, name=f"exit{i}")(h[:, 0])
             for i, h in enumerate(hiddens)]
    return exit_lib.finish(self, exits, final_BxC, self.exit_threshold,
                           train)


class TransformerLM(nn.Module):
  vocab_size: int
  width: int = 64
  num_layers: int = 2
  num_heads: int = 4
  mlp_dim: int = 128
  dropout: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  remat: str = "none"  # per block: accel.models.remat
  remat_names: tuple[str, ...] = ()

  @nn.compact
  def __call__(self, tokens_BxL, train: bool = False):
    x_BxLxD = _embed_tokens(self.vocab_size, self.width, self.dtype,
                            self.param_dtype)(tokens_BxL)
    length = tokens_BxL.shape[1]
    causal_1x1xLxL = jnp.tril(jnp.ones((length, length), bool))[None, None]
    x_BxLxD = _Trunk(self.num_layers, self.num_heads, self.mlp_dim,
                     self.dropout, self.dtype, self.param_dtype, self.remat,
                     tuple(self.remat_names), name="trunk")(
                         x_BxLxD, causal_1x1xLxL, train)
    logits_BxLxV = layers.dense(self.vocab_size, ("embed", "vocab"),
                                self.dtype, self.param_dtype, name="lm_head",
                                float32_output=True)(x_BxLxD)
    return logits_BxLxV.astype(jnp.float32)
