r"""Meta-attention learning rates against tuned AdamW and the learning-rate-
free methods a user would pick instead.

  python launch/bench.py --config configs/bench/meta_attention.py:v2 \
      --workdir benchmarks/meta_attention_v2

Variant `v2` (issue 19's acceptance): `meta_attention_adamw` at today's
defaults (the level learning during the first 40% of the run, no
network; base DEFAULT_LEARNING_RATE) on the quick suite's workloads
(MNIST-1D MLP and CNN, 600 steps; the imbalanced noisy synthetic task, 400)
and two of its `more` ones (digits CNN, the sequence Transformer, 400), in
both AlgoPerf rulesets: tuned (5-value grids on seed 100, seeds 0-2 at the
tuned value) and self-tuning (each method once per seed at its default
rate: AdamW 1e-3, schedule-free 2.5e-3, Mechanic 1e-3, 1.0 for Prodigy's
and DoG's multipliers). `meta_attention_from_10x` and `_from_tenth` are the
same optimizer started 10x above and below its default. The update's cost
against AdamW's is timed alone (overhead_rounds). Variant `horizon`: the
same workloads and protocol for AdamW, today's defaults and the level over
a 1,000-step trace (`horizon=1000`; `_h1000`, with its 10x and 0.1x
starts). Variant `prodigy_base`: the same workloads, self-tuning entries
only (one rate each), for `meta_attention_prodigy` (the level on top of
Prodigy's estimate, accel.optim.meta_attention_prodigy) at its default and
started 10x and 0.1x off, against AdamW's grid, Prodigy and
meta_attention_adamw at their defaults. Variant `prodigy_start`: Prodigy
with its first estimate (estim_lr0, optax's default 1e-6) at 1e-4 and 1e-3,
and the level on Prodigy at 1e-4, against the same AdamW grid. Variant
`prodigy_hold`: the level on Prodigy held until 10% of the run, then
learning until 40% within [1/2, 2], at Prodigy's first estimate 1e-6 and
1e-4.

The other variants compare earlier designs (their reports are in
benchmarks/meta_attention*/): `meta_attention_network` is the first design
(the attention network learning throughout, no level; named
`meta_attention_adamw` in reports before 2026-12-03), `_one_step` the same
with Baydin et al.'s one-step hypergradient (horizon 1); optax.contrib's
schedule-free AdamW (constant schedule after warm-up, as it is meant to
run), Prodigy, Mechanic (around AdamW) and DoG. Every method gets a 5-value
grid: learning rates for AdamW, meta-attention, schedule-free and Mechanic's
base, multipliers of the self-set step size (0.1 ... 10) for Prodigy and
DoG. 3 seeds; the target is 99% of AdamW's best mean final accuracy. Then
each method runs again at 0.1x and 10x its tuned value (`sensitivity`).
Variant `quick`: one workload, 3 values, 2 seeds, 300 steps. Variant
`dog`: AdamW and DoG alone (DoG's first run used the shared warm-up).
Variant `level`: the level estimator (benchmarks/meta_attention_estimator)
against the first design, tuned AdamW and the peers, with the self-tuning
ruleset beside the tuned one and the 0.1x/10x sensitivity:
`meta_attention_level` learns only the level (level_rate 1, the network
frozen) during the first 40% of the run (today's defaults);
`meta_attention_level_net` also lets the network learn the groups'
relative multipliers (hyper_lr 1e-4).
"""

import os

import ml_collections

from accel.bench import workloads
from accel.optim import meta_attention
from accel.train import config as config_lib

# The workload configs: this file's configs/ folder, wherever the checkout is.
_CONFIG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
MULTIPLIERS = (0.1, 0.3, 1.0, 3.0, 10.0)
# The first design's defaults (before 2026-12-03, when they were
# `meta_attention_adamw`'s): the network learns throughout, no level.
NETWORK = {"name": "meta_attention_adamw", "learn_groups": True,
           "level_rate": 0.0, "hyper_lr": 1e-3, "adapt_fraction": 1.0}


def _once(optim, lr):
  """`optim` at one rate, which is also its self-tuning default."""
  return dict(optim=optim, learning_rates=(lr,), default_lr=lr)


def _with_starts(name, prefix, optim):
  """`name` (a 5-value grid, entering the self-tuning ruleset at
  meta_attention.DEFAULT_LEARNING_RATE) and the same optimizer started
  10x above and 10x below that default (one rate each), `prefix`_from_10x
  and `prefix`_from_tenth."""
  default = meta_attention.DEFAULT_LEARNING_RATE
  return {name: dict(optim=optim, learning_rates=LRS, default_lr=default),
          f"{prefix}_from_10x": _once(optim, 10 * default),
          f"{prefix}_from_tenth": _once(optim, 0.1 * default)}


def _v2(c):
  """Issue 19's acceptance: today's defaults against tuned AdamW and the
  learning-rate-free peers at their defaults, on the quick suite's three
  workloads and two of its `more` ones."""
  c.workloads = {
      "mnist1d_mlp": workloads.mnist1d_mlp(600),
      "mnist1d_cnn": workloads.mnist1d_cnn(600),
      "synthetic": workloads.synthetic_imbalanced_noisy(400),
      "digits_cnn": workloads.digits_cnn(400),
      "sequence_transformer": dict(
          config="sequence_transformer", eval_every=40,
          target_fraction=0.99,
          overrides={"total_steps": 400, "optim": {"warmup_steps": 50}}),
  }
  for name, w in c.workloads.items():
    if name != "sequence_transformer":
      w.eval_every = w.overrides.total_steps // 10
    w.target_rule = "worst_seed_best"
  c.tuning_seeds = (100,)
  c.sensitivity = ()
  c.overhead_rounds = 5
  c.self_tuning = True
  c.methods = {
      "adamw": dict(optim={"name": "adamw"}, learning_rates=LRS,
                    default_lr=1e-3),
      **_with_starts("meta_attention_adamw", "meta_attention",
                     {"name": "meta_attention_adamw"}),
      "schedule_free_adamw": dict(
          optim={"name": "schedule_free_adamw", "schedule": "constant"},
          learning_rates=LRS, default_lr=2.5e-3),
      "prodigy": dict(optim={"name": "prodigy"}, learning_rates=MULTIPLIERS,
                      default_lr=1.0),
      "dog": dict(optim={"name": "dog", "warmup_steps": 0},
                  learning_rates=MULTIPLIERS, default_lr=1.0),
      "mechanic": dict(optim={"name": "mechanic"}, learning_rates=LRS,
                       default_lr=1e-3),
  }


def get_config(arg: str = ""):
  variants, _ = config_lib.parse_variant(
      arg, names=("dog", "quick", "level", "v2", "horizon", "prodigy_base",
                  "prodigy_start", "prodigy_hold"))
  c = ml_collections.ConfigDict()
  c.baseline = "adamw"
  c.seeds = (0, 1, 2)
  c.sensitivity = (0.1, 10.0)
  c.workloads = {"digits_cnn": workloads.digits_cnn(1000),
                 "mnist1d_cnn": workloads.mnist1d_cnn(1500)}
  c.methods = {
      "adamw": dict(optim={"name": "adamw"}, learning_rates=LRS),
      "meta_attention_network": dict(optim=NETWORK, learning_rates=LRS),
      "meta_attention_one_step": dict(
          optim={**NETWORK, "horizon": 1.0}, learning_rates=LRS),
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
        "adamw", "meta_attention_network", "schedule_free_adamw", "prodigy",
        "mechanic")}
    c.methods.meta_attention_level = dict(optim=level, learning_rates=LRS)
    c.methods.meta_attention_level_net = dict(
        optim={**level, "hyper_lr": 1e-4, "learn_groups": True},
        learning_rates=LRS)
    # The rate each enters the self-tuning ruleset with: AdamW's library
    # default for the Adam family, schedule-free's reference 0.0025, 1.0
    # for Prodigy's multiplier.
    defaults = {"adamw": 1e-3, "meta_attention_network": 1e-3,
                "schedule_free_adamw": 2.5e-3, "prodigy": 1.0,
                "mechanic": 1e-3, "meta_attention_level": 1e-3,
                "meta_attention_level_net": 1e-3}
    for name, lr in defaults.items():
      c.methods[name].default_lr = lr
    c.self_tuning = True
  if variants & {"v2", "horizon", "prodigy_base", "prodigy_start",
                  "prodigy_hold"}:
    _v2(c)
  if "prodigy_base" in variants:
    # The level on top of Prodigy's estimate (max 3x either way) at its
    # default multiplier 1.0 and started 10x and 0.1x off, against AdamW's
    # grid, Prodigy and today's meta_attention_adamw at their defaults
    # (self-tuning entries only: one rate each).
    ma_prodigy = {"name": "meta_attention_prodigy"}
    c.methods = {
        "adamw": c.methods.adamw,
        "prodigy": _once({"name": "prodigy"}, 1.0),
        "meta_attention_adamw": _once({"name": "meta_attention_adamw"},
                                      meta_attention.DEFAULT_LEARNING_RATE),
        "meta_attention_prodigy": _once(ma_prodigy, 1.0),
        "meta_attention_prodigy_from_10x": _once(ma_prodigy, 10.0),
        "meta_attention_prodigy_from_tenth": _once(ma_prodigy, 0.1)}
  if "prodigy_start" in variants:
    # Prodigy's first estimate (estim_lr0, optax's default 1e-6) 100x and
    # 1,000x larger, alone and under the level, at the default multiplier;
    # against the same AdamW grid.
    c.methods = {
        "adamw": c.methods.adamw,
        "prodigy_lr0_1e-4": _once({"name": "prodigy", "estim_lr0": 1e-4},
                                  1.0),
        "prodigy_lr0_1e-3": _once({"name": "prodigy", "estim_lr0": 1e-3},
                                  1.0),
        "meta_attention_prodigy_lr0_1e-4": _once(
            {"name": "meta_attention_prodigy", "estim_lr0": 1e-4}, 1.0)}
  if "prodigy_hold" in variants:
    # The level on Prodigy held until 10% of the run (while Prodigy's
    # estimate grows), then learning until 40% within [1/2, 2]; at optax's
    # first estimate and at 1e-4.
    hold = {"name": "meta_attention_prodigy", "adapt_start_fraction": 0.1,
            "max_multiplier": 2.0}
    c.methods = {
        "adamw": c.methods.adamw,
        "meta_attention_prodigy_held": _once({**hold, "estim_lr0": 1e-6},
                                             1.0),
        "meta_attention_prodigy_held_lr0_1e-4": _once(
            {**hold, "estim_lr0": 1e-4}, 1.0)}
  if "horizon" in variants:
    # The level over a 1,000-step trace against today's 100, with AdamW
    # (the target) and the same 10x / 0.1x starts.
    c.methods = {
        **{k: c.methods[k] for k in ("adamw", "meta_attention_adamw")},
        **_with_starts("meta_attention_h1000", "meta_attention_h1000", {
            "name": "meta_attention_adamw", "horizon": 1000.0})}
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
