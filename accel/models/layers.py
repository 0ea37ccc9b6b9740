"""Dense and conv layers whose parameters carry logical axis names.

Names follow T5X/MaxText (batch, embed, mlp, heads, kv, vocab, length);
`accel.parallel` maps them to mesh axes from the config, so model code never
names a mesh axis. Axes that are never worth sharding are None.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def partitioned(init, axes: Sequence[str | None]):
  return nn.with_logical_partitioning(init, tuple(axes))


def dense(features: int, axes: tuple[str | None, str | None], dtype: Dtype,
          param_dtype: Dtype, name: str | None = None,
          use_bias: bool = True, zero_init: bool = False,
          float32_output: bool = False) -> nn.Dense:
  """A Dense layer; `float32_output` accumulates and returns float32 even
  when the inputs and kernel are cast to a bfloat16 compute dtype (logits)."""
  kernel_init = (nn.initializers.zeros if zero_init
                 else nn.initializers.lecun_normal())
  dot = (functools.partial(jax.lax.dot_general,
                           preferred_element_type=jnp.float32)
         if float32_output else None)
  return nn.Dense(
      features, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
      dot_general=dot,
      kernel_init=partitioned(kernel_init, axes),
      bias_init=partitioned(nn.initializers.zeros, axes[-1:]), name=name)


def conv(features: int, kernel_size: Sequence[int], dtype: Dtype,
         param_dtype: Dtype, strides: Sequence[int] | int = 1,
         name: str | None = None, use_bias: bool = True) -> nn.Conv:
  axes = (None,) * len(kernel_size) + ("embed", "mlp")
  return nn.Conv(
      features, tuple(kernel_size), strides=strides, padding="SAME",
      use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
      kernel_init=partitioned(nn.initializers.lecun_normal(), axes),
      bias_init=partitioned(nn.initializers.zeros, ("mlp",)), name=name)


def layer_norm(dtype: Dtype, param_dtype: Dtype,
               name: str | None = None) -> nn.LayerNorm:
  # flax computes the statistics in float32 even when dtype is bfloat16.
  return nn.LayerNorm(
      dtype=dtype, param_dtype=param_dtype, name=name,
      scale_init=partitioned(nn.initializers.ones, ("embed",)),
      bias_init=partitioned(nn.initializers.zeros, ("embed",)))


def group_norm(groups: int, dtype: Dtype, param_dtype: Dtype,
               name: str | None = None) -> nn.GroupNorm:
  return nn.GroupNorm(
      num_groups=groups, dtype=dtype, param_dtype=param_dtype, name=name,
      scale_init=partitioned(nn.initializers.ones, ("mlp",)),
      bias_init=partitioned(nn.initializers.zeros, ("mlp",)))


class ClassifierHead(nn.Module):
  """The last projection to logits, always returned in float32."""
  num_classes: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    # The representation the head reads, for selection's attention scorer
    # (apply with mutable=["intermediates"] to get it; free otherwise).
    self.sow("intermediates", "features", x)
    logits = dense(self.num_classes, ("embed", None), self.dtype,
                   self.param_dtype, name="head", float32_output=True)(x)
    return logits.astype(jnp.float32)
