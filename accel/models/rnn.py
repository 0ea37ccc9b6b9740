"""GRU/LSTM sequence classifier, with optional attention pooling.

Inputs are float sequences [B, L, C] or token ids [B, L]. The recurrent core
is flax's own cell; `pool="attention"` replaces "last hidden state" with a
learned-query attention over all hidden states, which adds attention to the
RNN without touching its cells.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from accel.errors import ConfigError
from accel.models import attention as attn
from accel.models import layers

_CELLS = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}


class RNNClassifier(nn.Module):
  num_classes: int
  cell: str = "gru"
  hidden: int = 64
  num_layers: int = 1
  pool: str = "last"  # "last", "mean" or "attention"
  attention_heads: int = 2
  vocab_size: int = 0  # > 0: inputs are token ids, embedded first
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    if self.cell not in _CELLS:
      raise ConfigError(f"cell must be one of {sorted(_CELLS)}, got "
                        f"{self.cell!r}.")
    if self.vocab_size:
      x = nn.Embed(self.vocab_size, self.hidden, dtype=self.dtype,
                   param_dtype=self.param_dtype, name="embed",
                   embedding_init=layers.partitioned(
                       nn.initializers.normal(1.0), ("vocab", "embed")))(x)
    elif x.ndim == 2:
      x = x[..., None]
    x = x.astype(self.dtype)
    for i in range(self.num_layers):
      cell = _CELLS[self.cell](
          self.hidden, dtype=self.dtype, param_dtype=self.param_dtype,
          kernel_init=layers.partitioned(nn.initializers.lecun_normal(),
                                         ("embed", "mlp")),
          recurrent_kernel_init=layers.partitioned(
              nn.initializers.orthogonal(), (None, "mlp")),
          bias_init=layers.partitioned(nn.initializers.zeros, ("mlp",)))
      x = nn.RNN(cell, name=f"rnn{i}")(x)  # [B, L, hidden]
    if self.pool == "last":
      x = x[:, -1]
    elif self.pool == "mean":
      x = x.mean(axis=1)
    elif self.pool == "attention":
      x = attn.AttentionPooling(self.attention_heads, self.dtype,
                                self.param_dtype, name="pool")(x)
    else:
      raise ConfigError(f"pool must be 'last', 'mean' or 'attention', got "
                        f"{self.pool!r}.")
    return layers.ClassifierHead(self.num_classes, self.dtype,
                                 self.param_dtype, name="classifier")(x)
