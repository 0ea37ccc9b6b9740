"""Pruning during training: accuracy against sparsity, and train seconds
to the dense model's target.

  .venv/bin/python benchmarks/prune/measure.py

The MNIST-1D CNN of configs/mnist1d_cnn.py (64 channels, batch 128), 2,000
steps, AdamW 3e-3 with its cosine schedule, seeds 0-2, evaluated every 200
steps (accel.bench.trial: compile and evaluation excluded from the
seconds). Dense, then each method of accel.train.prune at several
sparsities (gradual methods prune from step 0 to 1,500, every 100 steps).
The target is 99% of the best accuracy the dense model reaches on its
worst seed. Writes benchmarks/prune/results.md.
"""

import os

import jax
import numpy as np

from accel.bench import host
from accel.bench import trial
from accel.train import config as config_lib
from accel.train import prune

OUT = os.path.dirname(os.path.abspath(__file__))
RUNS = [("dense", {}),
        *[(f"snip {s:g}", dict(method="snip", sparsity=s))
          for s in (0.5, 0.8, 0.9)],
        *[(f"magnitude {s:g}", dict(method="magnitude", sparsity=s))
          for s in (0.5, 0.8, 0.9)],
        ("nm 2:4", dict(method="nm")),
        *[(f"units {s:g}", dict(method="units", sparsity=s))
          for s in (0.25, 0.5)]]


def config(options, seed):
  c = config_lib.load_file("configs/mnist1d_cnn.py")
  c.total_steps, c.seed, c.progress_bar = 2000, seed, False
  if options:
    c.prune = prune.section(every=100, end_step=1500, **options)
  return c


def main():
  results = {}
  for name, options in RUNS:
    results[name] = [trial.run_trial(config(options, seed), eval_every=200)
                     for seed in range(3)]
    print(name, [r["final_accuracy"] for r in results[name]],
          [r["curve"][-1]["train"].get("prune/zero_share")
           for r in results[name]], flush=True)
  target = 0.99 * min(r["best_accuracy"] for r in results["dense"])
  dense_s = None
  lines = ["`.venv/bin/python benchmarks/prune/measure.py`", "",
           host.describe(jax.__version__, jax.devices()[0].device_kind), "",
           f"Target: {target:.4f} (99% of the dense model's worst-seed best).",
           "", "| run | zero share of prunable weights | final accuracy | "
           "train s to target (seeds reaching it) | x dense | ms/step |",
           "|---|---|---|---|---|---|"]
  for name, runs in results.items():
    reach = [trial.first_reach(r["curve"], target)["seconds_to_target"]
             for r in runs]
    got = [s for s in reach if s is not None]
    mean_s = float(np.mean(got)) if len(got) == len(reach) else None
    if name == "dense":
      dense_s = mean_s
    share = np.mean([r["curve"][-1]["train"].get("prune/zero_share", 0.0)
                     for r in runs])
    acc = [r["final_accuracy"] for r in runs]
    lines.append(
        f"| {name} | {share:.3f} | {np.mean(acc):.4f} ± {np.std(acc):.4f} | "
        + (f"{mean_s:.2f}" if mean_s is not None else "-")
        + f" ({len(got)}/{len(reach)}) | "
        + (f"{mean_s / dense_s:.2f}" if mean_s and dense_s else "-") + " | "
        f"{np.mean([r['step_ms'] for r in runs]):.2f} |")
  with open(os.path.join(OUT, "results.md"), "a") as f:
    f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
