r"""A GRU (or LSTM) reading MNIST-1D as a 40-step sequence.

  python launch/train.py --config configs/mnist1d_rnn.py --workdir runs/mnist1d_gru
  python launch/train.py --config configs/mnist1d_rnn.py:lstm,attention \
      --workdir runs/mnist1d_lstm_attn

Variants: `debug`, `lstm` (instead of GRU), `attention` (attention pooling
over all hidden states instead of the last one).
"""

from accel.train import config as config_lib


def get_config(arg: str = ""):
  variants, _ = config_lib.parse_variant(
      arg, names=("attention", "debug", "lstm"))
  c = config_lib.base_config()
  c.data = config_lib.data_section("mnist1d")
  c.model = config_lib.model_section(
      "rnn", cell="lstm" if "lstm" in variants else "gru", hidden=64,
      pool="attention" if "attention" in variants else "last")
  c.optim = config_lib.optim_section(
      "adamw", learning_rate=3e-3, schedule="cosine", warmup_steps=100,
      grad_clip_norm=1.0)
  c.total_steps = 4000
  if "debug" in variants:
    config_lib.shrink_for_debug(c)
  return c
