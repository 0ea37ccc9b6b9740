r"""A Transformer encoder on associative recall (token inputs).

  python launch/train.py --config configs/sequence_transformer.py \
      --workdir runs/recall_transformer

Variants: `debug`, `rnn` (a GRU with attention pooling on the same task).
"""

from accel.train import config as config_lib


def get_config(arg: str = ""):
  variants, _ = config_lib.parse_variant(arg, names=("debug", "rnn"))
  c = config_lib.base_config()
  c.data = config_lib.data_section("sequence", task="classification",
                                   num_pairs=8, num_train=20000)
  if "rnn" in variants:
    c.model = config_lib.model_section("rnn", hidden=128, pool="attention")
  else:
    c.model = config_lib.model_section("transformer", width=64, num_layers=2,
                                       num_heads=4, mlp_dim=128)
  c.optim = config_lib.optim_section(
      "adamw", learning_rate=1e-3, schedule="cosine", warmup_steps=200,
      weight_decay=0.01, grad_clip_norm=1.0)
  c.total_steps = 5000
  if "debug" in variants:
    config_lib.shrink_for_debug(c)
  return c
