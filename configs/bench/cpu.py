r"""The CPU suite that `make bench` runs: every optimizer a user would pick
instead of accel, and each accel component, on small workloads, with the
same tuning budget for every method.

  python launch/bench.py --config configs/bench/cpu.py \
      --workdir benchmarks/cpu --report benchmarks/cpu/report.md

Protocol: 5 learning rates per method, tuned on seed 100 (the learning rate
reaching the target in the fewest steps); then seeds 0, 1, 2 at the tuned
rate, which are the reported numbers. Target: 99% of the best accuracy
AdamW reaches on its worst seed at its tuned rate (so AdamW reaches it on
every seed; the final accuracy on the noisy task falls after a peak). Each run uses the workload's own schedule
(cosine with warm-up) and batch.

Workloads (short budgets so the suite fits in 20 minutes on 2 CPU cores;
steps are jitted one per call, batches as below). Time outside the jitted
step (input pipeline, dispatch) is counted alike for every method, so it
dilutes a method's extra step cost in its time to target; the report's
update table gives its share per workload (benchmarks/cpu/report.md):
  mnist1d_mlp    MLP on MNIST-1D, 600 steps, batch 128;
  mnist1d_cnn    32-channel 1-D CNN on MNIST-1D, 600 steps, batch 64;
  synthetic      MLP on 1:20 imbalanced Gaussian clusters, 20% corrupted
                 labels, 400 steps (worst-class accuracy reported).
Every workload is classified as held out or of the meta-training family
from configs/meta/default.py (accel.bench.split); the report's
conclusions put the held-out ones first. Each ratio gets a bootstrap
interval over seeds and timing rounds (accel.bench.intervals): one whose
interval holds 1 is a tie.
Variant `more` runs the suite's other four workloads instead, with short
budgets (about 45 minutes): the CNN on scikit-learn's 8x8 digits (400
steps, batch 64), the GRU on MNIST-1D (500 steps), the Transformer on the
synthetic sequence task (400 steps) and the small decoder LM on
associative recall (400 steps, batch 64), the last two with 50 warm-up
steps instead of 200. The attention scorer does not run on the LM (it
needs class labels).

Variant `full` is the suite that decides (`make bench-full`; hours,
continued from its journal across invocations, each workload on one
machine: launch/bench.py leaves a workload begun on another for it): six
workloads sized so that tuned AdamW needs 20-120 s (about 25-35 s) to
reach the target here, each step's jitted part far above its dispatch
(accel.bench.workloads); held-out workloads run first:
  text_lm            byte-level decoder Transformer on the CPython standard
                     library's sources, 4,096 tokens a step (held out;
                     without stale_drop, whose chance level is a
                     classifier's);
  resnet20_textures  ResNet-20 on the CIFAR-sized textures (held out);
  mnist1d_cnn        the MNIST-1D CNN at 192 channels, batch 512;
  synthetic          the 1:20 imbalanced, 20%-noisy task at 100 classes;
  digits_cnn         the digits CNN at 64 and 128 channels, batch 512
                     (without loss top-k: its 2,048 candidates a step
                     exceed the 1,438 training images);
  digits_noisy       the same with 20% of its training labels flipped,
                     AdamW and stale_drop only (batch selection's noisy
                     real data set, issue 21);
with both AlgoPerf rulesets (self-tuning: every method once per seed at
its library default, `default_lr` below, and every tuned method with its
sweep's time), AdamW and NAdamW tuned over cosine and linear decay, the
methods of FULL_METHODS on 6-value grids, and AdamW's reported trials run
twice (its run-to-run spread, in the report). The report flags a tuned rate at the
edge of its grid.

Methods: AdamW (baseline), NAdamW, SGD with momentum, schedule-free AdamW,
optax.contrib's Muon (hybrid: Muon on hidden kernels, AdamW on the rest),
Prodigy, DoG, Mechanic, Lion; accel's gradient transformer (shipped weights),
meta-attention learning rates, both chained (the full suite also runs
the gradient transformer's base alone, `orthogonal_hybrid`); batch
selection with 4x
candidates by loss top-k and by the attention scorer (RHO-LOSS needs an
irreducible-loss table per workload: configs/bench/selection.py runs it);
the full suite also runs `stale_drop`, the stale-loss filter under the
break-even controller (of 1.25x candidates it drops those whose last
training loss is above log(C); no scoring pass).
DoG runs at optax's defaults, whose first step is 1e-6 of the parameters'
scale (reps_rel): on the digits CNN it learns nothing in 400 steps at any
schedule, and learns with reps_rel 1e-3 only without weight decay
(benchmarks/cpu_full/dog_check.py and .log); its rows say how the default
does on runs this short, not what a tuned first step would.
After each workload, every optimizer's update alone and whole step are
timed at its tuned learning rate as launch/bench_overhead.py does
(interleaved rounds, median; suite.OVERHEAD_STEPS updates in one jitted
scan, and as many jitted steps dispatched back to back).
Variant `quick`: one workload, 2 methods, 2 learning rates (a smoke run);
`methods=a+b` keeps those methods and the baseline; `workloads=a+b` those
workloads.
"""

import os

import ml_collections

from accel.bench import workloads
from accel.optim import meta_attention
from accel.train import config as config_lib

# The workload configs: this file's configs/ folder, wherever the checkout is.
_CONFIG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A 5-point grid around each family's usual range (half-decades).
ADAM_LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
SGD_LRS = (1e-2, 3e-2, 1e-1, 3e-1, 1.0)
LION_LRS = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
# Prodigy and Mechanic estimate the step size; their "learning rate" is a
# multiplier on that estimate.
SCALE_LRS = (0.1, 0.3, 1.0, 3.0, 10.0)
# The full suite's grids, one value longer: the wide MNIST-1D CNN's sizing
# run found AdamW's best at the quick grid's top (3e-2;
# benchmarks/cpu_full/sizing.md), so 1e-1 joins, and the step-size
# multipliers of Prodigy and DoG gain 30 so every grid keeps one size (6).
FULL_ADAM_LRS = ADAM_LRS + (1e-1,)
FULL_SCALE_LRS = SCALE_LRS + (30.0,)
# The full suite's methods: the peers issue 20 names (AdamW, NAdamW,
# schedule-free AdamW, Muon, Prodigy, DoG), Mechanic (the third step-size
# estimator the self-tuning ruleset compares), and accel's methods: the
# gradient transformer with its hand-designed base alone
# (orthogonal_hybrid: Muon where Newton-Schulz pays, NAdamW elsewhere; the
# ablation issue 18 asks for), meta-attention and loss top-k.
# SGD, Lion, the chained GT + meta-attention and the attention scorer run
# in the quick suite only: each trial here costs half a minute.
FULL_METHODS = ("adamw", "nadamw", "schedule_free_adamw", "muon", "prodigy",
                "dog", "mechanic", "gradient_transformer",
                "orthogonal_hybrid", "meta_attention_adamw", "loss_topk",
                "stale_drop")
# The noisy digits measure batch selection only (issue 21): uniform AdamW
# against the stale-loss filter.
NOISY_DIGITS_METHODS = ("adamw", "stale_drop")


def _select(scorer):
  # Plain top-k at every step: the break-even controller (on by default)
  # is measured in configs/bench/selection.py.
  return {"selection": {"scorer": scorer, "method": "topk", "ratio": 4.0,
                        "warmup_steps": 50, "controller": "off"}}


# Tuned-grid AdamW's mean whole-run train seconds per full-suite workload
# (its trials in benchmarks/cpu_full/trials.jsonl, on each one's machine;
# ResNet-20's and the digits CNN's stay the Zen 4's, so that each
# workload's trials on the Zen 3 keep one limit: about 3.9x AdamW there,
# e.g. the digits CNN's Zen 3 grid mean is 61 s; the 192-channel MNIST-1D
# CNN's is AdamW's 1,000 steps in its sizing on an Intel Xeon, 103-106 ms
# a step: benchmarks/cpu_full/sizing_192.log).
FULL_ADAMW_S = {"text_lm": 32, "resnet20_textures": 40, "mnist1d_cnn": 105,
                "synthetic": 32, "digits_cnn": 48, "digits_noisy": 55}


def get_config(arg: str = ""):
  variants, options = config_lib.parse_variant(
      arg, names=("full", "more", "quick"), options=("methods", "workloads"))
  c = ml_collections.ConfigDict()
  c.baseline = "adamw"
  c.tuning_seeds = (100,)
  # The optimizer update alone against AdamW's (accel.bench.overhead).
  c.overhead_rounds = 5
  c.seeds = (0, 1, 2)
  full = "full" in variants
  c.workloads = {
      "mnist1d_mlp": workloads.mnist1d_mlp(600),
      "mnist1d_cnn": workloads.mnist1d_cnn(600),
      "synthetic": workloads.synthetic_imbalanced_noisy(400),
  }
  if "more" in variants:
    c.workloads = {
        "digits_cnn": workloads.digits_cnn(400),
        "mnist1d_gru": dict(
            config="mnist1d_rnn", eval_every=100, target_fraction=0.99,
            overrides={"total_steps": 500}),
        "sequence_transformer": dict(
            config="sequence_transformer", eval_every=100,
            target_fraction=0.99,
            overrides={"total_steps": 400, "optim": {"warmup_steps": 50}}),
        "lm_transformer": dict(
            config="lm_transformer", eval_every=100, target_fraction=0.99,
            overrides={"total_steps": 400, "batch_size": 64,
                       "optim": {"warmup_steps": 50}},
            exclude_methods={"attention_topk": "its class prototypes need "
                                               "a classification task"}),
    }
  if full:
    c.workloads = {
        "text_lm": workloads.text_lm(),
        "resnet20_textures": workloads.resnet20_textures(),
        "mnist1d_cnn": workloads.mnist1d_cnn_wide(),
        "synthetic": workloads.synthetic_large(),
        "digits_cnn": dict(
            workloads.digits_cnn_wide(),
            exclude_methods={"loss_topk": "4x candidates of batch 512 "
                             "(2,048) exceed the 1,438 training images"}),
        "digits_noisy": workloads.digits_cnn_wide(),
    }
    c.workloads.digits_noisy.overrides.data = {"label_noise": 0.2}
    c.workloads.digits_noisy.exclude_methods = {
        m: "the noisy digits measure batch selection only"
        for m in FULL_METHODS if m not in NOISY_DIGITS_METHODS}
    # AlgoPerf's maximum runtime: 5x tuned-grid AdamW's mean whole run on
    # its machine (benchmarks/cpu_full/trials.jsonl); no method but Muon
    # on the synthetic MLP (540 s: Newton-Schulz on its 1024x1024 layer at
    # batch 256) comes near it.
    for wname, adamw_s in FULL_ADAMW_S.items():
      c.workloads[wname].max_train_s = 5 * adamw_s
    c.workloads.text_lm.exclude_methods = {
        "stale_drop": "it drops losses above chance, log(C): a "
                      "classification task's"}
  adamw = {"name": "adamw"}
  # default_lr: the library default each method enters the self-tuning
  # ruleset with (AdamW and its relatives 1e-3, meta-attention its own
  # default base 1e-2; Muon here matches AdamW's
  # update RMS, so AdamW's; schedule-free AdamW its reference code's
  # 0.0025; Lion its authors' 1e-4; the step-size estimators 1.0).
  c.methods = {
      "adamw": dict(optim=adamw, learning_rates=ADAM_LRS, default_lr=1e-3),
      "nadamw": dict(optim={"name": "nadamw"}, learning_rates=ADAM_LRS,
                     default_lr=1e-3),
      "sgd_momentum": dict(optim={"name": "sgd", "momentum": 0.9},
                           learning_rates=SGD_LRS, default_lr=0.1),
      "schedule_free_adamw": dict(
          optim={"name": "schedule_free_adamw", "schedule": "constant"},
          learning_rates=ADAM_LRS, default_lr=2.5e-3),
      "muon": dict(optim={"name": "muon"}, learning_rates=ADAM_LRS,
                   default_lr=1e-3),
      "prodigy": dict(optim={"name": "prodigy"}, learning_rates=SCALE_LRS,
                      default_lr=1.0),
      "dog": dict(optim={"name": "dog"}, learning_rates=SCALE_LRS,
                  default_lr=1.0),
      "mechanic": dict(optim={"name": "mechanic"}, learning_rates=ADAM_LRS,
                       default_lr=1e-3),
      "lion": dict(optim={"name": "lion"}, learning_rates=LION_LRS,
                   default_lr=1e-4),
      "gradient_transformer": dict(optim={"name": "gradient_transformer"},
                                   learning_rates=ADAM_LRS, default_lr=1e-3),
      "meta_attention_adamw": dict(
          optim={"name": "meta_attention_adamw"}, learning_rates=ADAM_LRS,
          default_lr=meta_attention.DEFAULT_LEARNING_RATE),
      "gt_and_meta_lr": dict(
          optim={"name": "gradient_transformer", "meta_lr": True},
          learning_rates=ADAM_LRS, default_lr=1e-3),
      "loss_topk": dict(optim=adamw, learning_rates=ADAM_LRS,
                        overrides=_select("loss"), default_lr=1e-3),
      "attention_topk": dict(optim=adamw, learning_rates=ADAM_LRS,
                             overrides=_select("attention"), default_lr=1e-3),
  }
  # Which workloads meta-training saw (accel.bench.split): computed from
  # the config that made the shipped weights.
  c.meta_training_config = os.path.join(_CONFIG_DIR, "meta", "default.py")
  c.description = (
      "The quick CPU suite (`make bench`): small workloads whose times to "
      "target are seconds, so dispatch and noise weigh; see the full suite "
      "for the numbers that decide.")
  if full:
    # AlgoPerf's two rulesets; AdamW and NAdamW also choose between cosine
    # and linear decay to zero (a grid twice the others' size: it can only
    # flatter the baselines).
    c.self_tuning = True
    c.methods["orthogonal_hybrid"] = dict(
        optim={"name": "orthogonal_hybrid"}, learning_rates=ADAM_LRS,
        default_lr=1e-3)
    # The small-loss filter on free scores under the break-even controller
    # (configs/bench/selection_pays.py's stale_drop): of 1.25x candidates
    # it drops those whose last training loss is above log(C). Its 20
    # plain steps before the controller's first probe are a tenth of the
    # shortest run (the digits CNN's 200 steps, where the first probe's
    # windows are 10 steps long).
    c.methods["stale_drop"] = dict(
        optim=adamw, learning_rates=ADAM_LRS, default_lr=1e-3,
        overrides={"selection": {
            "scorer": "stale_loss", "method": "topk", "ratio": 1.25,
            "prefer": "low", "drop_above_chance": 1.0, "warmup_steps": 20}})
    c.methods = {m: c.methods[m] for m in FULL_METHODS}
    for m in c.methods.values():
      m.learning_rates = {ADAM_LRS: FULL_ADAM_LRS, SCALE_LRS: FULL_SCALE_LRS}[
          tuple(m.learning_rates)]
    for m in ("adamw", "nadamw"):
      c.methods[m].schedules = ("cosine", "linear")
    c.repeat_baseline = True
    c.description = (
        "The full CPU suite: both rulesets, AdamW and NAdamW tuned over "
        "two schedules.")
  for w in c.workloads.values():
    if not full:
      w.eval_every = w.overrides.total_steps // 10
    w.target_rule = "worst_seed_best"
  if options.get("workloads"):
    workloads.keep_workloads(c, options["workloads"])
  if options.get("methods"):
    workloads.keep_methods(c, options["methods"])
  if "quick" in variants:
    c.workloads = {"synthetic": c.workloads["synthetic"]}
    c.workloads.synthetic.overrides.total_steps = 200
    c.workloads.synthetic.eval_every = 50
    c.seeds = (0, 1)
    workloads.keep_methods(c, "loss_topk")
    for m in c.methods.values():
      m.learning_rates = m.learning_rates[1:3]
  workloads.set_config_dir(c, _CONFIG_DIR)
  return c
