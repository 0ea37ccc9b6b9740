r"""Scored batch formation against uniform batches, wall-clock included.

  python launch/bench.py --config configs/bench/selection.py \
      --workdir benchmarks/selection

Every selection method draws 4x the batch as candidates, scores them with
the model in the same jitted step (the scoring forward pass is paid in
every timing) and trains on 1/4 of them; selection starts after 50 steps.
Baselines, all AdamW with the workload's cosine schedule:
  adamw                 uniform batches, the same number of steps;
  uniform_same_time     uniform batches, as many steps as fit in the
                        wall-clock `loss_topk` took (cosine over them);
  uniform_big_batch     uniform batches as large as the candidate batch.
Selection: `loss_topk` (highest loss), `grad_norm_importance` (importance
sampling on the gradient-norm bound, unbiased weights), `rho_topk`
(RHO-LOSS: reducible loss, irreducible-loss table made first from a model
trained on a 20% holdout of the training split; its seconds are
reported), `rho_topk_rebalanced` (the same with inverse-frequency class
weights), `attention_topk` (the attention scorer: candidates whose
features attend least to their own label's class prototype). 3 learning
rates each, 3 seeds; target = 99% of AdamW's best.
Variant `quick`: the synthetic workload, 2 learning rates, 1 seed;
`methods=a+b`: only those methods (and the baseline).
"""

import os

import ml_collections

from accel.bench import workloads
from accel.train import config as config_lib

# The workload configs: this file's configs/ folder, wherever the checkout is.
_CONFIG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LRS = (1e-3, 3e-3, 1e-2)


def _select(scorer, method="topk", **options):
  return {"selection": {"scorer": scorer, "method": method, "ratio": 4.0,
                        "warmup_steps": 50, "controller": "off", **options}}


def get_config(arg: str = ""):
  variants, options = config_lib.parse_variant(
      arg, names=("quick",), options=("methods",))
  c = ml_collections.ConfigDict()
  c.baseline = "adamw"
  c.seeds = (0, 1, 2)
  il = {"holdout_fraction": 0.2, "steps": 500, "batch_size": 64}
  c.workloads = {
      "synthetic_imbalanced_noisy": workloads.synthetic_imbalanced_noisy(1000),
      "mnist1d_mlp": workloads.mnist1d_mlp(1500),
      "digits_cnn": workloads.digits_cnn(1000),
  }
  for w in c.workloads.values():
    w.irreducible = il
  adamw = {"name": "adamw"}
  c.methods = {
      "adamw": dict(optim=adamw, learning_rates=LRS),
      "uniform_same_time": dict(optim=adamw, learning_rates=LRS,
                                match_wallclock_of="loss_topk"),
      "uniform_big_batch": dict(optim=adamw, learning_rates=LRS,
                                batch_multiplier=4),
      "loss_topk": dict(optim=adamw, learning_rates=LRS,
                        overrides=_select("loss")),
      "grad_norm_importance": dict(
          optim=adamw, learning_rates=LRS,
          overrides=_select("grad_norm_bound", "importance", min_prob=0.1)),
      "rho_topk": dict(optim=adamw, learning_rates=LRS,
                       overrides=_select("reducible_loss",
                                         irreducible_table="auto")),
      "rho_topk_rebalanced": dict(
          optim=adamw, learning_rates=LRS,
          overrides=_select("reducible_loss", irreducible_table="auto",
                            class_rebalance=1.0)),
      "attention_topk": dict(optim=adamw, learning_rates=LRS,
                             overrides=_select("attention")),
  }
  if options.get("methods"):
    workloads.keep_methods(c, options["methods"])
  if "quick" in variants:
    c.seeds = (0,)
    c.workloads = {"synthetic_imbalanced_noisy":
                   c.workloads["synthetic_imbalanced_noisy"]}
    c.workloads.synthetic_imbalanced_noisy.overrides.total_steps = 300
    c.workloads.synthetic_imbalanced_noisy.irreducible.steps = 200
    for m in c.methods.values():
      m.learning_rates = LRS[1:]
  workloads.set_config_dir(c, _CONFIG_DIR)
  return c
