r"""The Newton-Schulz cost rule with each kernel's own rows (convolutions
count their output positions), on the full suite's digits CNN: the
gradient transformer and its base at Muon's tuned rate against tuned AdamW
and Muon (rates from the full suite's tuning, benchmarks/cpu_full).

  .venv/bin/python launch/bench.py --config benchmarks/conv_rows/suite.py \
      --workdir benchmarks/conv_rows

Variant `small_mix`: AdamW and the gradient transformer with its
coefficients bounded to +-0.25 instead of +-1 (max_mix), same rate:

  .venv/bin/python launch/bench.py \
      --config benchmarks/conv_rows/suite.py:small_mix \
      --workdir benchmarks/conv_rows/small_mix
"""

import os

import ml_collections

from accel.bench import workloads

_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                           "..", "configs")


def get_config(variant: str = ""):
  c = ml_collections.ConfigDict()
  c.baseline = "adamw"
  c.seeds = (0, 1, 2)
  c.workloads = {"digits_cnn": dict(workloads.digits_cnn_wide(),
                                    target_rule="worst_seed_best")}
  c.methods = {
      "adamw": dict(optim={"name": "adamw", "schedule": "linear"},
                    learning_rates=(0.1,)),
      "muon": dict(optim={"name": "muon"}, learning_rates=(0.03,)),
      "orthogonal_hybrid": dict(optim={"name": "orthogonal_hybrid"},
                                learning_rates=(0.03,)),
      "gradient_transformer": dict(optim={"name": "gradient_transformer"},
                                   learning_rates=(0.03,)),
  }
  if variant == "small_mix":
    c.methods = {"adamw": c.methods["adamw"], "gt_small_mix": dict(
        optim={"name": "gradient_transformer", "max_mix": 0.25},
        learning_rates=(0.03,))}
  elif variant:
    raise ValueError(f"unknown variant {variant!r}; expected 'small_mix'.")
  workloads.set_config_dir(c, _CONFIG_DIR)
  return c
