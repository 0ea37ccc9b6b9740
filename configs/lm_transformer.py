r"""A decoder-only Transformer language model on associative recall.

Only the answer token counts in the loss and accuracy (the other tokens are
random), so accuracy is the share of queries answered right.

  python launch/train.py --config configs/lm_transformer.py --workdir runs/recall_lm

Variants: `debug`; `ngram` (the n-gram language of accel.data.sequence
instead of recall: 64-token sequences, every target counts); `medium` (a
3.2M-parameter model on the n-gram language, for the accelerator benchmark
suite); `large` (a 26M-parameter
model on 257-token sequences, for accelerator throughput: launch/scaling.py).
"""

from accel.train import config as config_lib


def get_config(arg: str = ""):
  variants, _ = config_lib.parse_variant(
      arg, names=("debug", "large", "medium", "ngram"))
  c = config_lib.base_config()
  c.data = config_lib.data_section("sequence", task="lm", num_pairs=8,
                                   num_train=20000)
  c.model = config_lib.model_section("transformer_lm", width=64, num_layers=2,
                                     num_heads=4, mlp_dim=128)
  c.optim = config_lib.optim_section(
      "adamw", learning_rate=1e-3, schedule="cosine", warmup_steps=200,
      weight_decay=0.01, grad_clip_norm=1.0)
  c.total_steps = 5000
  if "ngram" in variants or "medium" in variants:
    c.data = config_lib.data_section("sequence", task="ngram",
                                     num_train=50000)
  if "medium" in variants:
    c.model = config_lib.model_section("transformer_lm", width=256,
                                       num_layers=4, num_heads=4,
                                       mlp_dim=1024)
  if "large" in variants:
    c.data = config_lib.data_section("sequence", task="lm", num_pairs=128,
                                     num_keys=256, num_values=256,
                                     num_train=20000)
    c.model = config_lib.model_section("transformer_lm", width=512,
                                       num_layers=8, num_heads=8,
                                       mlp_dim=2048)
    c.batch_size = 64
  if "debug" in variants:
    config_lib.shrink_for_debug(c)
  return c
