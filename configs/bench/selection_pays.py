r"""Does scored batch formation pay in wall-clock? (issue 21)

  python launch/bench.py --config configs/bench/selection_pays.py \
      --workdir benchmarks/selection_pays

The baseline trains on uniform batches; every other method forms its
batches from candidates, under the break-even controller
(accel.selection.controller, on by default) unless its name ends in
`_always`. Every timing includes whatever the method pays: scoring passes,
the candidates' transfer, the controller's probe. All use AdamW with the
workload's schedule, each method its own 5-value learning-rate grid tuned
on seed 100; seeds 0, 1, 2 are reported; the target is 99% of the best
accuracy uniform AdamW reaches on its worst seed.

Workloads: the 1:20 imbalanced, 20%-noisy synthetic task at 100 classes
(the full CPU suite's) and the digits CNN with 20% of its training labels
flipped (accel.data.digits' label_noise), where selection should pay;
the MNIST-1D CNN and the clean digits CNN, where the controller should
turn it off and cost at most 3%.

Methods:
  adamw                      uniform batches (the baseline);
  stale_rank                 the stale_loss scorer (each example's last
                             training loss, no scoring pass) with
                             rank-based sampling, 2x candidates;
  loss_topk                  a scoring pass, top-k by loss, 4x candidates;
  loss_topk_ladder           the same, with the controller free to fall
                             back to 2x and then 1.25x candidates (a
                             cheaper scoring pass) before it turns
                             selection off (controller_ratios);
  grad_norm_importance       a scoring pass, importance sampling on the
                             gradient-norm bound (variance rule);
  attention_filter           the attention scorer preferring LOW scores:
                             of 1.25x candidates, drops the fifth whose
                             labels agree least with their features;
  attention_filter_always    the same without the controller;
  stale_filter               the stale_loss scorer preferring LOW scores
                             (the small-loss trick): of 1.25x candidates,
                             drops the fifth with the highest last training
                             loss (unmeasured ones are kept); no scoring
                             pass;
  stale_filter_always        the same without the controller;
  stale_drop                 the same filter dropping only candidates
                             whose stale loss exceeds the chance level
                             log(C) (drop_above_chance=1): on clean data
                             few do, so the batch stays near uniform;
  stale_drop_always          the same without the controller.
  stale_band                 top-k by stale loss within a band: of 2x
                             candidates the highest losses below log(C)
                             (hard examples whose labels the model does
                             not contradict), those above it last; no
                             scoring pass;
  stale_band_always          the same without the controller;
  stale_band_low_always      the same with the line at half of log(C).
Variant `quick`: the noisy digits only, 2 rates, 1 seed (a smoke run).
Variant `full`: the full CPU suite's digits, noisy and clean (batch 512,
200 steps, evaluated every 10; configs/bench/cpu.py:full), with its 6-value
grid and the filters' 20 plain warm-up steps; it adds `stale_drop_early`,
stale_drop switched on by one paying probe (controller_confirm=1) instead
of two: on the full suite's noisy digits the target fell at step 60-80,
before the second probe ends (step 100).
Options `workloads=a+b` and `methods=a+b` keep those (and the baseline);
`probe_trim=x` sets every controller's probe trim
(config.selection.controller_probe_trim, default 0.25) and `probe=heldout`
its probe's examples (config.selection.controller_probe, default train);
`probe_clip=x` caps each probe loss at x log(C) (controller_probe_clip);
`z=x` sets the standard errors by which selecting must beat plain windows
(controller_z, default 0.5);
`eval_every=n` evaluates every n steps (times to target are read at the
evaluations: the workloads' own 100 steps make them coarse).
"""

import os

import ml_collections

from accel.bench import workloads
from accel.train import config as config_lib

_CONFIG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def _select(scorer, method="topk", ratio=4.0, **options):
  return {"selection": {"scorer": scorer, "method": method, "ratio": ratio,
                        "warmup_steps": 50, **options}}


def _filters(name, scorer, **options):
  """`name`: of 1.25x candidates, drop the fifth with the highest scores
  (prefer low), under the controller; `name`_always: the same without
  it."""
  adamw = {"name": "adamw"}
  on = _select(scorer, ratio=1.25, prefer="low", **options)
  off = _select(scorer, ratio=1.25, prefer="low", controller="off", **options)
  return {name: dict(optim=adamw, learning_rates=LRS, overrides=on),
          f"{name}_always": dict(optim=adamw, learning_rates=LRS,
                                 overrides=off)}


def get_config(arg: str = ""):
  variants, options = config_lib.parse_variant(
      arg, names=("full", "quick"),
      options=("methods", "workloads", "probe_trim", "probe", "probe_clip",
               "z", "eval_every"))
  c = ml_collections.ConfigDict()
  c.baseline = "adamw"
  c.tuning_seeds = (100,)
  c.seeds = (0, 1, 2)
  noisy_digits = workloads.digits_cnn(1000)
  noisy_digits["overrides"]["data"] = {"label_noise": 0.2}
  c.workloads = {
      "synthetic_noisy": workloads.synthetic_large(),
      "digits_noisy": noisy_digits,
      "mnist1d_cnn": workloads.mnist1d_cnn(1500),
      "digits_cnn": workloads.digits_cnn(1000),
  }
  for w in c.workloads.values():
    w.target_rule = "worst_seed_best"
  adamw = {"name": "adamw"}
  c.methods = {
      "adamw": dict(optim=adamw, learning_rates=LRS),
      "stale_rank": dict(optim=adamw, learning_rates=LRS, overrides=_select(
          "stale_loss", "rank", ratio=2.0)),
      "loss_topk": dict(optim=adamw, learning_rates=LRS,
                        overrides=_select("loss")),
      "loss_topk_ladder": dict(optim=adamw, learning_rates=LRS,
                               overrides=_select(
                                   "loss", controller_ratios=(2.0, 1.25))),
      "grad_norm_importance": dict(
          optim=adamw, learning_rates=LRS,
          overrides=_select("grad_norm_bound", "importance", min_prob=0.1)),
      **_filters("attention_filter", "attention"),
      **_filters("stale_filter", "stale_loss"),
      **_filters("stale_drop", "stale_loss", drop_above_chance=1.0),
      "stale_band": dict(optim=adamw, learning_rates=LRS, overrides=_select(
          "stale_loss", ratio=2.0, drop_above_chance=1.0)),
      "stale_band_always": dict(
          optim=adamw, learning_rates=LRS, overrides=_select(
              "stale_loss", ratio=2.0, drop_above_chance=1.0,
              controller="off")),
      "stale_band_low_always": dict(
          optim=adamw, learning_rates=LRS, overrides=_select(
              "stale_loss", ratio=2.0, drop_above_chance=0.5,
              controller="off")),
  }
  if "full" in variants:
    c.workloads = {"digits_noisy": workloads.digits_cnn_wide(),
                   "digits_cnn": workloads.digits_cnn_wide()}
    c.workloads.digits_noisy.overrides.data = {"label_noise": 0.2}
    for w in c.workloads.values():
      w.target_rule = "worst_seed_best"
      w.eval_every = 10
    c.methods["stale_drop_early"] = dict(
        optim=adamw, learning_rates=LRS, overrides=_select(
            "stale_loss", ratio=1.25, prefer="low", drop_above_chance=1.0,
            controller_confirm=1))
    for m in c.methods.values():
      m.learning_rates = LRS + (1e-1,)
      if "overrides" in m:
        m.overrides.selection.warmup_steps = 20
  probe = {}
  if options.get("probe_trim"):
    probe["controller_probe_trim"] = float(options["probe_trim"])
  if options.get("probe"):
    probe["controller_probe"] = options["probe"]
  if options.get("probe_clip"):
    probe["controller_probe_clip"] = float(options["probe_clip"])
  if options.get("z"):
    probe["controller_z"] = float(options["z"])
  for m in c.methods.values():
    if "overrides" in m:
      m.overrides.selection.update(probe)
  if options.get("eval_every"):
    # A finer grid of evaluations: times to target are read at them.
    for w in c.workloads.values():
      w.eval_every = int(options["eval_every"])
  if options.get("workloads"):
    workloads.keep_workloads(c, options["workloads"])
  if options.get("methods"):
    workloads.keep_methods(c, options["methods"])
  if "quick" in variants:
    c.seeds = (0,)
    c.workloads = {"digits_noisy": c.workloads["digits_noisy"]}
    c.workloads.digits_noisy.overrides.total_steps = 300
    c.workloads.digits_noisy.eval_every = 50
    for m in c.methods.values():
      m.learning_rates = LRS[2:4]
  workloads.set_config_dir(c, _CONFIG_DIR)
  return c
