r"""A 2-D CNN on scikit-learn's bundled 8x8 digits.

  python launch/train.py --config configs/digits_cnn.py --workdir runs/digits_cnn

Variants: `debug`, `attention` (self-attention adapter after each conv block).
"""

from accel.train import config as config_lib


def get_config(arg: str = ""):
  variants, _ = config_lib.parse_variant(arg, names=("attention", "debug"))
  c = config_lib.base_config()
  c.data = config_lib.data_section("digits")
  c.model = config_lib.model_section(
      "cnn", channels=(32, 64), kernel_size=3, strides=1, pool="mean",
      hidden=64, attention="attention" in variants)
  c.optim = config_lib.optim_section(
      "adamw", learning_rate=3e-3, schedule="cosine", warmup_steps=50,
      weight_decay=1e-4)
  c.total_steps, c.batch_size, c.eval_every = 1500, 64, 500
  if "debug" in variants:
    config_lib.shrink_for_debug(c)
  return c
