r"""A byte-level decoder-only Transformer on real text that is on every
machine with Python: the CPython standard library's sources
(accel.data.text; no download). 32 sequences of 128 bytes: 4,096 tokens a
step; accuracy is next-byte accuracy on held-out files.

  python launch/train.py --config configs/text_lm.py --workdir runs/text_lm

Variants: `debug`; `docs` (the Python manual's topics, English prose,
instead of the sources); `medium` (a 4-layer, 256-wide model for the
accelerator suite).
"""

from accel.train import config as config_lib


def get_config(arg: str = ""):
  variants, _ = config_lib.parse_variant(
      arg, names=("debug", "docs", "medium"))
  c = config_lib.base_config()
  c.data = config_lib.data_section("text", corpus="python_stdlib",
                                   length=128)
  c.model = config_lib.model_section("transformer_lm", width=128,
                                     num_layers=2, num_heads=4, mlp_dim=512)
  c.optim = config_lib.optim_section(
      "adamw", learning_rate=3e-3, schedule="cosine", warmup_steps=100,
      weight_decay=0.01, grad_clip_norm=1.0)
  c.batch_size = 32
  c.eval_batch_size = 256
  c.total_steps = 2000
  if "docs" in variants:
    c.data.corpus = "python_docs"
    c.data.max_train_bytes = 0
  if "medium" in variants:
    c.model = config_lib.model_section("transformer_lm", width=256,
                                       num_layers=4, num_heads=4,
                                       mlp_dim=1024)
  if "debug" in variants:
    c.data.max_train_bytes, c.data.max_test_bytes = 1 << 20, 1 << 16
    config_lib.shrink_for_debug(c)
  return c
