r"""Meta-attention learning rates against tuned AdamW and the learning-rate-
free methods a user would pick instead.

  python launch/bench.py --config configs/bench/meta_attention.py \
      --workdir benchmarks/meta_attention

Methods: AdamW with the workload's cosine schedule (the baseline);
`meta_attention_adamw` on the same cosine base schedule (default options:
horizon 100, anchor 1e-3); the same with Baydin et al.'s one-step
hypergradient (horizon 1, the short-horizon-bias ablation); optax.contrib's
schedule-free AdamW (constant schedule after warm-up, as it is meant to
run), Prodigy, Mechanic (around AdamW) and DoG. Every method gets a 5-value
grid: learning rates for AdamW, meta-attention, schedule-free and Mechanic's
base, multipliers of the self-set step size (0.1 ... 10) for Prodigy and
DoG. 3 seeds; the target is 99% of AdamW's best mean final accuracy. Then
each method runs again at 0.1x and 10x its tuned value (`sensitivity`).
Variant `quick`: one workload, 3 values, 2 seeds, 300 steps. Variant
`dog`: AdamW and DoG alone (DoG's first run used the shared warm-up).
Variant `level` (issue 19): the level estimator
(benchmarks/meta_attention_estimator) against the shipped defaults, tuned
AdamW and the peers, with AlgoPerf's self-tuning ruleset (each method once
per seed at its default rate) beside the tuned one and the 0.1x/10x
sensitivity: `meta_attention_level` learns only the level (level_rate 1,
the network frozen, hyper_lr 0) during the first 40% of the run;
`meta_attention_level_net` also lets the network learn the groups' relative
multipliers (hyper_lr 1e-4).
"""

import os

import ml_collections

from accel.bench import workloads
from accel.train import config as config_lib

# The workload configs: this file's configs/ folder, wherever the checkout is.
_CONFIG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
MULTIPLIERS = (0.1, 0.3, 1.0, 3.0, 10.0)


def get_config(arg: str = ""):
  variants, _ = config_lib.parse_variant(arg, names=("dog", "quick", "level"))
  c = ml_collections.ConfigDict()
  c.baseline = "adamw"
  c.seeds = (0, 1, 2)
  c.sensitivity = (0.1, 10.0)
  c.workloads = {"digits_cnn": workloads.digits_cnn(1000),
                 "mnist1d_cnn": workloads.mnist1d_cnn(1500)}
  c.methods = {
      "adamw": dict(optim={"name": "adamw"}, learning_rates=LRS),
      "meta_attention_adamw": dict(optim={"name": "meta_attention_adamw"},
                                   learning_rates=LRS),
      "meta_attention_one_step": dict(
          optim={"name": "meta_attention_adamw", "horizon": 1.0},
          learning_rates=LRS),
      "schedule_free_adamw": dict(
          optim={"name": "schedule_free_adamw", "schedule": "constant"},
          learning_rates=LRS),
      "prodigy": dict(optim={"name": "prodigy"}, learning_rates=MULTIPLIERS),
      "mechanic": dict(optim={"name": "mechanic"}, learning_rates=LRS),
      # DoG's step grows from the distance it has moved: under the shared
      # warm-up (which starts at 0) it never moves (measured), so no warm-up.
      "dog": dict(optim={"name": "dog", "warmup_steps": 0},
                  learning_rates=MULTIPLIERS),
  }
  if "level" in variants:
    level = {"name": "meta_attention_adamw", "level_rate": 1.0,
             "hyper_lr": 0.0, "adapt_fraction": 0.4}
    c.methods = {k: c.methods[k] for k in (
        "adamw", "meta_attention_adamw", "schedule_free_adamw", "prodigy",
        "mechanic")}
    c.methods.meta_attention_level = dict(optim=level, learning_rates=LRS)
    c.methods.meta_attention_level_net = dict(
        optim={**level, "hyper_lr": 1e-4}, learning_rates=LRS)
    # The rate each enters the self-tuning ruleset with: AdamW's library
    # default for the Adam family, schedule-free's reference 0.0025, 1.0
    # for Prodigy's multiplier.
    defaults = {"adamw": 1e-3, "meta_attention_adamw": 1e-3,
                "schedule_free_adamw": 2.5e-3, "prodigy": 1.0,
                "mechanic": 1e-3, "meta_attention_level": 1e-3,
                "meta_attention_level_net": 1e-3}
    for name, lr in defaults.items():
      c.methods[name].default_lr = lr
    c.self_tuning = True
  if "dog" in variants:
    c.methods = {k: c.methods[k] for k in ("adamw", "dog")}
  if "quick" in variants:
    c.seeds = (0, 1)
    c.workloads = {"digits_cnn": c.workloads["digits_cnn"]}
    c.workloads.digits_cnn.overrides.total_steps = 300
    for m in c.methods.values():
      m.learning_rates = m.learning_rates[1:4]
  workloads.set_config_dir(c, _CONFIG_DIR)
  return c
