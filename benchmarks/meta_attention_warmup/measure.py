"""Does the meta-attention level learn to undo the warm-up? During a
linear warm-up the base rate is below its peak, the hypergradient says
"raise", and the level climbs (on the held-out byte LM to 1.89x by the end
of its 32-step warm-up, benchmarks/meta_attention_start_lm), then has to
come back down. This runs `meta_attention_adamw` on the workloads of
configs/bench/meta_attention.py:v2 (issue 19's quick acceptance suite) at
its default base rate and 10x above and below it, with the level learning
from step 0 (today's default) and held at 1 until the warm-up ends
(`adapt_start_fraction` = warm-up steps / total steps), seeds 0-2, on
that suite's stored targets (benchmarks/meta_attention_v2/results.json).

  .venv/bin/python benchmarks/meta_attention_warmup/measure.py

Writes results.md and results.json beside this file.
"""

import json
import os

import jax

from accel.bench import host
from accel.bench import trial_configs
from accel.bench import variants
from accel.optim import meta_attention
from accel.train import config as config_lib

OUT = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(OUT))
SUITE = os.path.join(ROOT, "benchmarks", "meta_attention_v2", "results.json")
SEEDS = (0, 1, 2)
STARTS = {"default": 1.0, "from_10x": 10.0, "from_tenth": 0.1}


def _warmup_fraction(workload) -> float:
  c = trial_configs.workload_config(workload)
  return c.optim.warmup_steps / c.total_steps


def main():
  bench = config_lib.load_file(
      os.path.join(ROOT, "configs", "bench", "meta_attention.py") + ":v2")
  rows, lines = [], [
      f"{host.describe(jax.__version__, jax.devices()[0].device_kind)}", "",
      "| workload | start | level learns from | steps to target | final "
      "accuracy | multiplier at each evaluation (seed 0) |",
      "|---|---|---|---|---|---|"]
  for wname, workload in bench.workloads.items():
    target = variants.stored_workload(SUITE, wname)["target"]
    hold = _warmup_fraction(workload)
    for start, factor in STARTS.items():
      lr = factor * meta_attention.DEFAULT_LEARNING_RATE
      for arm, fraction in (("step 0", 0.0), ("warm-up end", hold)):
        method = bench.methods.meta_attention_adamw.copy_and_resolve_references()
        with method.unlocked():
          method.optim.adapt_start_fraction = fraction
        runs = variants.run(workload, method, lr, SEEDS,
                            name=f"{wname} {start} {arm}")
        row = variants.row(arm, runs, target)
        row.update(workload=wname, start=start, lr=lr, target=target,
                   adapt_start_fraction=fraction,
                   multiplier=[[p["train"]["meta_lr/global_multiplier"]
                                for p in r["curve"]] for r in runs])
        rows.append(row)
        lines.append(
            f"| {wname} ({target:.4f}) | {start} ({lr:g}) | {arm} | "
            + ", ".join("-" if s is None else str(s)
                        for s in row["steps_to_target"])
            + " | " + ", ".join(f"{a:.4f}" for a in row["final_accuracy"])
            + " | " + ", ".join(f"{m:.2f}" for m in row["multiplier"][0])
            + " |")
        print(lines[-1], flush=True)
  with open(os.path.join(OUT, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(OUT, "results.json"), "w") as f:
    json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
