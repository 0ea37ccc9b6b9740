r"""The accelerator suite: accel's methods against AdamW on one GPU, where
step times are those of real hardware, not of 2 CPU cores.

  python launch/bench.py --config configs/bench/gpu.py --workdir W

Sized, from measured per-trial times (benchmarks/gpu/README.md), for
about 10 minutes on one H100, data generation and compilation included;
not yet run as one command (the text LM, which replaced the n-gram LM,
has not run on a GPU at all: it processes half the n-gram LM's tokens a
step). Every new (method, learning rate) compiles on
its own and every trial has a set-up cost besides its steps, so the grid
is small.
Workloads, computing in bfloat16 with float32 master weights (except
`adamw_float32`):
  textures_resnet  ResNet-20 (GroupNorm) on CIFAR-sized synthetic textures
                   (50,000 32x32x3 images, 10 classes; configs/
                   textures_resnet.py), batch 128, 1000 steps;
  text_lm          a byte-level decoder Transformer (4 layers, width 256)
                   on the CPython standard library's sources
                   (configs/text_lm.py:medium), 32 x 128 = 4,096 tokens a
                   step, 1000 steps; the report gives its MFU (XLA's
                   FLOPs of the step over the chip's bf16 peak).
Protocol, as in the CPU suite but with 2 learning rates (1e-3, 3e-3) per
method: tuned on seed 100; seeds 0 and 1 at the tuned rate are reported;
target: 99% of the best accuracy tuned AdamW reaches on its worst seed.
Methods: AdamW (baseline), meta-attention learning rates and the gradient
transformer (shipped weights). Variant `all` adds AdamW in float32,
schedule-free AdamW and loss top-k batch selection (4x candidates, from
step 50): about 20 minutes by the same estimate.
Compile time is reported apart and not counted (suite.py).
A time budget of 8.5 minutes (`time_budget_minutes`) guards the 10: no
trial starts after it; the workloads finished by then are written, and the
same command run again continues from the trials already done
(launch/bench.py). `--time_budget_minutes=0` lifts it.

Options: `workload=NAME` runs one workload; besides the two above, it may
name `ngram_lm` (a 3.2M-parameter decoder on the n-gram language,
configs/lm_transformer.py:medium, batch 128: the LM of the stored 2026
runs), `mnist1d_cnn` (configs/mnist1d_cnn.py, 3000 steps) or `recall_lm` (the
tiny recall LM of configs/lm_transformer.py, 8000 steps), the workloads of
the suite's first version. `methods=a+b`: only those methods (the baseline
is always kept); `seeds=N`: N reported seeds; `wide`: the grid widened by
1e-2 (3 rates); `quick`: 600 steps, the higher rate only, seed 0 untuned
(a smoke run of the chosen methods).
"""

import os

import ml_collections

from accel.bench import workloads
from accel.train import config as config_lib

# The workload configs: this file's configs/ folder, wherever the checkout is.
_CONFIG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LRS = (1e-3, 3e-3)


def _workloads():
  bf16 = {"compute": "bfloat16"}
  return {
      "textures_resnet": dict(
          config="textures_resnet", eval_every=100, target_fraction=0.99,
          target_rule="worst_seed_best",
          overrides={"total_steps": 1000, "eval_batch_size": 2000,
                     "precision": bf16}),
      "ngram_lm": dict(
          config="lm_transformer:medium", eval_every=100,
          target_fraction=0.99, target_rule="worst_seed_best",
          overrides={"total_steps": 1000, "eval_batch_size": 1024,
                     "precision": bf16}),
      "text_lm": dict(
          config="text_lm:medium", eval_every=100, target_fraction=0.99,
          target_rule="worst_seed_best",
          overrides={"total_steps": 1000, "eval_batch_size": 512,
                     "precision": bf16}),
      "mnist1d_cnn": dict(
          config="mnist1d_cnn", eval_every=250, target_fraction=0.99,
          overrides={"total_steps": 3000, "eval_batch_size": 1000,
                     "precision": bf16}),
      "recall_lm": dict(
          config="lm_transformer", eval_every=500, target_fraction=0.99,
          overrides={"total_steps": 8000, "eval_batch_size": 1024,
                     "precision": bf16}),
  }


def get_config(arg: str = ""):
  variants, options = config_lib.parse_variant(
      arg, names=("all", "quick", "wide"),
      options=("methods", "seeds", "workload"))
  c = ml_collections.ConfigDict()
  c.baseline = "adamw"
  c.time_budget_minutes = 8.5
  c.tuning_seeds = (100,)
  c.seeds = (0, 1)
  c.workloads = _workloads()
  workloads.keep_workloads(
      c, options.get("workload") or "textures_resnet+text_lm")
  adamw = {"name": "adamw"}
  c.methods = {
      "adamw": dict(optim=adamw, learning_rates=LRS),
      "adamw_float32": dict(optim=adamw, learning_rates=LRS, overrides={
          "precision": {"compute": "float32"}}),
      "schedule_free_adamw": dict(
          optim={"name": "schedule_free_adamw", "schedule": "constant"},
          learning_rates=LRS),
      "meta_attention_adamw": dict(optim={"name": "meta_attention_adamw"},
                                   learning_rates=LRS),
      "gradient_transformer": dict(optim={"name": "gradient_transformer"},
                                   learning_rates=LRS),
      "loss_topk": dict(optim=adamw, learning_rates=LRS, overrides={
          "selection": {"scorer": "loss", "method": "topk", "ratio": 4.0,
                        "warmup_steps": 50, "controller": "off"}}),
  }
  if "wide" in variants:
    for m in c.methods.values():
      m.learning_rates = LRS + (1e-2,)
  if "seeds" in options:
    c.seeds = tuple(range(int(options["seeds"])))
  if options.get("methods"):
    workloads.keep_methods(c, options["methods"])
  elif "all" not in variants:
    workloads.keep_methods(c, "meta_attention_adamw+gradient_transformer")
  if "quick" in variants:
    c.tuning_seeds, c.seeds = (), (0,)
    for m in c.methods.values():
      m.learning_rates = LRS[-1:]
    for w in c.workloads.values():
      w.overrides.total_steps, w.eval_every = 600, 100
  workloads.set_config_dir(c, _CONFIG_DIR)
  return c
