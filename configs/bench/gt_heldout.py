r"""The gradient transformer on held-out tasks against tuned AdamW.

  python launch/bench.py --config configs/bench/gt_heldout.py \
      --workdir benchmarks/gt_heldout

Held-out for the shipped network (configs/meta/default.py): the digits and
MNIST-1D CNNs (meta-training had neither data set); the GRU on associative
recall and the imbalanced, noisy clusters use generators meta-training drew
from (balanced clean clusters, recall with a Transformer), so
accel.bench.split counts them as seen. Runs (1,000-1,500 steps) are longer
than the meta-training horizons (200-600 steps). benchmarks/gt_heldout/
holds the first gradient transformer's results (retired; its code is at
commit 3f50062).

Each method gets the same 5-value learning-rate grid, 3 seeds per value;
the target is 99% of the best mean final accuracy of AdamW over its grid.
Variant `quick`: 2 workloads, 3 learning rates, 2 seeds (a smoke run).
Variant `digits_wide`: the digits workload alone on a grid shifted up
(1e-3 ... 1e-1), because AdamW's best value on the default grid was its
largest.
"""

import os

import ml_collections

from accel.bench import workloads
from accel.train import config as config_lib

# The workload configs: this file's configs/ folder, wherever the checkout is.
_CONFIG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def get_config(arg: str = ""):
  variants, _ = config_lib.parse_variant(arg, names=("digits_wide", "quick"))
  c = ml_collections.ConfigDict()
  c.baseline = "adamw"
  c.seeds = (0, 1, 2)
  c.workloads = {
      "digits_cnn": workloads.digits_cnn(1000),
      "mnist1d_cnn": workloads.mnist1d_cnn(1500),
      "recall_gru": workloads.recall_gru(1500),
      "synthetic_imbalanced_noisy": workloads.synthetic_imbalanced_noisy(1000),
  }
  c.methods = {
      "adamw": dict(optim={"name": "adamw"}, learning_rates=LRS),
      "gradient_transformer": dict(optim={"name": "gradient_transformer"},
                                   learning_rates=LRS),
  }
  if "digits_wide" in variants:
    c.workloads = {"digits_cnn": c.workloads["digits_cnn"]}
    for m in c.methods.values():
      m.learning_rates = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
  if "quick" in variants:
    c.seeds = (0, 1)
    c.workloads = {k: c.workloads[k] for k in ("digits_cnn",
                                               "synthetic_imbalanced_noisy")}
    for w in c.workloads.values():
      w.overrides.total_steps = 300
    for m in c.methods.values():
      m.learning_rates = (1e-3, 3e-3, 1e-2)
  workloads.set_config_dir(c, _CONFIG_DIR)
  return c
