"""A plain strided CNN for 1-D signals [B, L, C] or 2-D images [B, H, W, C].

The default matches the MNIST-1D paper's CNN in spirit: a few stride-2 conv
layers with ReLU, flattened into a linear classifier. `attention=True` adds
a `SelfAttentionAdapter` after every conv block.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from accel.errors import ConfigError
from accel.models import attention as attn
from accel.models import layers


class CNN(nn.Module):
  num_classes: int
  channels: Sequence[int] = (32, 32, 32)
  kernel_size: int = 5
  strides: int = 2
  hidden: int = 0  # width of a dense layer before the classifier; 0 = none
  pool: str = "flatten"  # or "mean" over positions
  attention: bool = False
  attention_heads: int = 2
  dropout: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    spatial = x.ndim - 2
    if spatial not in (1, 2):
      raise ConfigError(f"CNN expects [B, L, C] or [B, H, W, C] inputs, got "
                        f"shape {x.shape}.")
    x = x.astype(self.dtype)
    for i, ch in enumerate(self.channels):
      x = layers.conv(ch, (self.kernel_size,) * spatial, self.dtype,
                      self.param_dtype, strides=self.strides,
                      name=f"conv{i}")(x)
      x = nn.relu(x)
      if self.attention:
        x = attn.SelfAttentionAdapter(self.attention_heads, self.dtype,
                                      self.param_dtype, name=f"adapter{i}")(x)
    if self.pool == "flatten":
      x = x.reshape(x.shape[0], -1)
    elif self.pool == "mean":
      x = x.mean(axis=tuple(range(1, 1 + spatial)))
    else:
      raise ConfigError(f"pool must be 'flatten' or 'mean', got {self.pool!r}.")
    if self.hidden:
      x = nn.relu(layers.dense(self.hidden, ("embed", "mlp"), self.dtype,
                               self.param_dtype, name="hidden")(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return layers.ClassifierHead(self.num_classes, self.dtype,
                                 self.param_dtype, name="classifier")(x)
