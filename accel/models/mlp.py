"""Multi-layer perceptron over flattened inputs."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from accel.models import layers


class MLP(nn.Module):
  num_classes: int
  hidden: Sequence[int] = (128, 64, 32)
  dropout: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.reshape(x.shape[0], -1).astype(self.dtype)
    for i, width in enumerate(self.hidden):
      # Alternate the sharded axis so consecutive layers pair up as in a
      # Transformer MLP (embed->mlp, mlp->embed).
      axes = ("embed", "mlp") if i % 2 == 0 else ("mlp", "embed")
      x = layers.dense(width, axes, self.dtype, self.param_dtype,
                       name=f"dense{i}")(x)
      x = nn.relu(x)
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return layers.ClassifierHead(self.num_classes, self.dtype,
                                 self.param_dtype, name="classifier")(x)
