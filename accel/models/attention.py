"""Multi-head attention, and the adapters that add it to classic models.

The attention is written out (not nn.MultiHeadDotProductAttention) so that
the query/key/value and output kernels carry their own logical axis names
(embed x heads x kv, and heads x kv x embed) and the softmax runs in float32
whatever the compute dtype.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from accel.errors import ConfigError
from accel.models import layers

Dtype = Any


class MultiHeadAttention(nn.Module):
  """Scaled dot-product attention of queries x_q over inputs x_kv.

  Shapes: x_q [B, Q, D], x_kv [B, K, D], mask broadcastable to [B, H, Q, K].
  """
  num_heads: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  zero_init_output: bool = False

  def _proj(self, name, head_dim, use_bias=True):
    return nn.DenseGeneral(
        (self.num_heads, head_dim), dtype=self.dtype, use_bias=use_bias,
        param_dtype=self.param_dtype, name=name,
        kernel_init=layers.partitioned(nn.initializers.lecun_normal(),
                                       ("embed", "heads", "kv")),
        bias_init=layers.partitioned(nn.initializers.zeros, ("heads", "kv")))

  @nn.compact
  def __call__(self, x_q, x_kv, mask=None):
    d = x_q.shape[-1]
    if d % self.num_heads:
      raise ConfigError(f"width {d} is not divisible by num_heads "
                        f"{self.num_heads}.")
    head_dim = d // self.num_heads
    q_BxQxHxK = self._proj("query", head_dim)(x_q)
    # No key bias: it adds q.b to every logit of a query, which the softmax
    # cancels, so its gradient is zero and only rounding noise would move it.
    k_BxTxHxK = self._proj("key", head_dim, use_bias=False)(x_kv)
    v_BxTxHxK = self._proj("value", head_dim)(x_kv)
    logits_BxHxQxT = jnp.einsum("bqhk,bthk->bhqt", q_BxQxHxK, k_BxTxHxK,
                                preferred_element_type=jnp.float32)
    logits_BxHxQxT = logits_BxHxQxT / jnp.sqrt(head_dim).astype(jnp.float32)
    if mask is not None:
      logits_BxHxQxT = jnp.where(mask, logits_BxHxQxT, -1e30)
    probs_BxHxQxT = jax.nn.softmax(logits_BxHxQxT, axis=-1)
    self.sow("intermediates", "attention_weights", probs_BxHxQxT)
    out_BxQxHxK = jnp.einsum("bhqt,bthk->bqhk",
                             probs_BxHxQxT.astype(self.dtype), v_BxTxHxK)
    out_init = (nn.initializers.zeros if self.zero_init_output
                else nn.initializers.lecun_normal())
    return nn.DenseGeneral(
        d, axis=(-2, -1), dtype=self.dtype, param_dtype=self.param_dtype,
        name="out",
        kernel_init=layers.partitioned(out_init, ("heads", "kv", "embed")),
        bias_init=layers.partitioned(nn.initializers.zeros, ("embed",)))(
            out_BxQxHxK)


class SelfAttentionAdapter(nn.Module):
  """x + Attention(LayerNorm(x)) over all positions of a feature map.

  Inserted after a conv/residual block. The output projection starts at
  zero, so at initialisation the adapter is the identity and the host model
  computes exactly what it would without it; training decides how much
  global context to mix in.
  """
  num_heads: int = 2
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    shape = x.shape
    x_BxNxC = x.reshape(shape[0], -1, shape[-1])
    h = layers.layer_norm(self.dtype, self.param_dtype, name="norm")(x_BxNxC)
    h = MultiHeadAttention(self.num_heads, self.dtype, self.param_dtype,
                           zero_init_output=True, name="attention")(h, h)
    return (x_BxNxC + h).reshape(shape)


class AttentionPooling(nn.Module):
  """Pools a sequence [B, L, D] into [B, D] with a learned query."""
  num_heads: int = 2
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x_BxLxD):
    d = x_BxLxD.shape[-1]
    query_1x1xD = self.param(
        "query", layers.partitioned(nn.initializers.normal(0.02),
                                    (None, None, "embed")),
        (1, 1, d), self.param_dtype)
    q_Bx1xD = jnp.broadcast_to(query_1x1xD, (x_BxLxD.shape[0], 1, d))
    pooled = MultiHeadAttention(self.num_heads, self.dtype, self.param_dtype,
                                name="attention")(
                                    q_Bx1xD.astype(self.dtype), x_BxLxD)
    return pooled[:, 0]
