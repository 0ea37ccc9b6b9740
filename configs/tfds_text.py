r"""Text classification on a prepared tfds data set, reading UTF-8 bytes.

  python launch/train.py --config configs/tfds_text.py:dataset=imdb_reviews \
      --workdir runs/imdb_transformer

Variants: `debug`, `dataset=NAME` (default imdb_reviews), `rnn` (an LSTM
with attention pooling instead of the Transformer encoder).
"""

from accel.train import config as config_lib


def get_config(arg: str = ""):
  variants, options = config_lib.parse_variant(
      arg, names=("debug", "rnn"), options=("dataset",))
  c = config_lib.base_config()
  c.data = config_lib.data_section(
      "tfds", dataset=options.get("dataset", "imdb_reviews"), max_length=512)
  if "rnn" in variants:
    c.model = config_lib.model_section("rnn", cell="lstm", hidden=128,
                                       pool="attention")
  else:
    c.model = config_lib.model_section("transformer", width=128,
                                       num_layers=2, num_heads=4, mlp_dim=256)
  c.optim = config_lib.optim_section(
      "adamw", learning_rate=3e-4, schedule="cosine", warmup_steps=500,
      weight_decay=0.01, grad_clip_norm=1.0)
  c.total_steps, c.batch_size = 10000, 64
  if "debug" in variants:
    config_lib.shrink_for_debug(c)
    c.data.max_length = 128
  return c
