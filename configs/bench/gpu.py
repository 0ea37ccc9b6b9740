r"""The accelerator suite: accel's methods against AdamW on one GPU, where
step times are those of real hardware, not of 2 CPU cores.

  python launch/bench.py --config configs/bench/gpu.py --workdir W

Workloads: the Transformer LM of configs/lm_transformer.py (associative
recall, batch 128) for 8000 steps, evaluated every 500, and the MNIST-1D CNN
of configs/mnist1d_cnn.py for 3000 steps, evaluated every 250. Variant
`workload=NAME` runs one of them. Every method computes
in bfloat16 (float32 master weights) except `adamw_float32`, the same AdamW
in float32. Methods: AdamW (baseline); schedule-free AdamW; meta-attention
learning rates; the gradient transformer (shipped weights); loss top-k batch
selection (4x candidates, from step 50). 2 learning rates, 2 seeds; target:
99% of AdamW's best mean final accuracy. Variant `quick`: 600 steps, 1 seed.
Variant `wide`: 3 learning rates (1e-3, 3e-3, 1e-2); `methods=a+b`: only
those methods (the baseline is always kept); `seeds=N`: N seeds.
Compile time is reported apart and not counted (suite.py).
"""

import ml_collections

from accel.bench import workloads
from accel.train import config as config_lib

LRS = (1e-3, 3e-3)


def get_config(arg: str = ""):
  variants = config_lib.variants(arg)
  c = ml_collections.ConfigDict()
  c.baseline = "adamw"
  c.seeds = (0, 1)
  bf16 = {"compute": "bfloat16"}
  c.workloads = {
      "recall_lm": dict(
          config="lm_transformer", eval_every=500, target_fraction=0.99,
          overrides={"total_steps": 8000, "eval_batch_size": 1024,
                     "precision": bf16}),
      "mnist1d_cnn": dict(
          config="mnist1d_cnn", eval_every=250, target_fraction=0.99,
          overrides={"total_steps": 3000, "eval_batch_size": 1000,
                     "precision": bf16}),
  }
  only = config_lib.variant_options(arg).get("workload")
  if only:
    if only not in c.workloads:
      raise ValueError(f"Unknown workload {only!r}; expected one of "
                       f"{sorted(c.workloads)}.")
    c.workloads = {only: c.workloads[only]}
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
                        "warmup_steps": 50}}),
  }
  if "wide" in variants:
    for m in c.methods.values():
      m.learning_rates = LRS + (1e-2,)
  options = config_lib.variant_options(arg)
  if "seeds" in options:
    c.seeds = tuple(range(int(options["seeds"])))
  if options.get("methods"):
    workloads.keep_methods(c, options["methods"])
  if "quick" in variants:
    c.seeds = (0,)
    for w in c.workloads.values():
      w.overrides.total_steps, w.eval_every = 600, 100
  return c
