r"""The default job: a 1-D CNN on MNIST-1D, generated locally.

  python launch/train.py --config configs/mnist1d_cnn.py --workdir runs/mnist1d_cnn
  python launch/train.py --config configs/mnist1d_cnn.py:debug --workdir runs/debug

Variants (after the colon, comma-separated): `debug` (a few steps, seconds on
CPU), `attention` (a self-attention adapter after each conv block).
"""

from accel.train import config as config_lib


def get_config(arg: str = ""):
  variants, _ = config_lib.parse_variant(arg, names=("attention", "debug"))
  c = config_lib.base_config()
  c.data = config_lib.data_section("mnist1d")
  c.model = config_lib.model_section(
      "cnn", channels=(64, 64, 64), kernel_size=5, strides=2, dropout=0.5,
      attention="attention" in variants)
  c.optim = config_lib.optim_section(
      "adamw", learning_rate=3e-3, schedule="cosine", warmup_steps=100,
      weight_decay=0.05)
  c.total_steps = 4000
  c.batch_size = 128
  c.eval_every = 1000
  c.checkpoint_every = 1000
  if "debug" in variants:
    config_lib.shrink_for_debug(c)
  return c
