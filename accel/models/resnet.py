"""A small ResNet for 32x32 images (ResNet-20 layout by default).

GroupNorm instead of BatchNorm: with no running batch statistics the train
state is just (params, optimizer state), and a model's output for an example
does not depend on which other examples share its batch, which scoring
candidates for batch selection relies on.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from accel.errors import ConfigError
from accel.models import attention as attn
from accel.models import early_exit as exit_lib
from accel.models import layers
from accel.models import remat as remat_lib


class ResidualBlock(nn.Module):
  channels: int
  strides: int
  dtype: Any
  param_dtype: Any

  @nn.compact
  def __call__(self, x):
    groups = min(8, self.channels)
    norm = lambda name: layers.group_norm(groups, self.dtype,
                                          self.param_dtype, name=name)
    y = layers.conv(self.channels, (3, 3), self.dtype, self.param_dtype,
                    strides=self.strides, use_bias=False, name="conv1")(x)
    y = nn.relu(norm("norm1")(remat_lib.tag(y, "conv1_out")))
    y = layers.conv(self.channels, (3, 3), self.dtype, self.param_dtype,
                    use_bias=False, name="conv2")(y)
    y = norm("norm2")(remat_lib.tag(y, "conv2_out"))
    if x.shape[-1] != self.channels or self.strides != 1:
      x = layers.conv(self.channels, (1, 1), self.dtype, self.param_dtype,
                      strides=self.strides, use_bias=False,
                      name="shortcut")(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  num_classes: int
  stage_channels: Sequence[int] = (16, 32, 64)
  blocks_per_stage: int = 3
  attention: bool = False
  attention_heads: int = 2
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  remat: str = "none"  # per residual block: accel.models.remat
  remat_names: tuple[str, ...] = ()
  # Adaptive depth (accel.models.early_exit): an exit head after each
  # residual block, on its globally pooled output.
  early_exit: bool = False
  exit_threshold: float = 1.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    if x.ndim != 4:
      raise ConfigError(f"ResNet expects [B, H, W, C] images, got {x.shape}.")
    x = x.astype(self.dtype)
    x = layers.conv(self.stage_channels[0], (3, 3), self.dtype,
                    self.param_dtype, use_bias=False, name="stem")(x)
    x = nn.relu(layers.group_norm(min(8, self.stage_channels[0]), self.dtype,
                                  self.param_dtype, name="stem_norm")(x))
    block = remat_lib.wrap(ResidualBlock, self.remat, self.remat_names)
    pooled = []
    for s, ch in enumerate(self.stage_channels):
      for b in range(self.blocks_per_stage):
        strides = 2 if (s > 0 and b == 0) else 1
        x = block(ch, strides, self.dtype, self.param_dtype,
                  name=f"stage{s}_block{b}")(x)
        if self.attention:
          x = attn.SelfAttentionAdapter(
              self.attention_heads, self.dtype, self.param_dtype,
              name=f"stage{s}_adapter{b}")(x)
        pooled.append(x.mean(axis=(1, 2)))
    final = layers.ClassifierHead(self.num_classes, self.dtype,
                                  self.param_dtype, name="classifier")(
                                      pooled[-1])
    if not self.early_exit:
      return final
    exits = [exit_lib.ExitHead(self.num_classes, self.dtype,
                               self.param_dtype, name=f"exit{i}")(h)
             for i, h in enumerate(pooled[:-1])]
    return exit_lib.finish(self, exits, final, self.exit_threshold, train)
