"""Is the meta-attention level's early overshoot what costs it the held-out
byte LM? In the full suite's text_lm (configs/bench/cpu.py:full) at its
default base rate (0.01) its multiplier is 1.89 at step 32 and 0.89 from
step 128 (where it freezes, adapt_fraction 0.4), and it ends below tuned
AdamW. This runs it with the level held at 1 for the first 10% of the run
(`adapt_start_fraction=0.1`), seeds 0-2, on the suite's target.

  .venv/bin/python benchmarks/meta_attention_start_lm/measure.py

Writes results.md and results.json beside this file.
"""

import json
import os

import jax

from accel.bench import host
from accel.bench import variants
from accel.train import config as config_lib

OUT = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(OUT))
SUITE = os.path.join(ROOT, "benchmarks", "cpu_full", "results.json")
LR, START = 0.01, 0.1


def main():
  suite = variants.stored_workload(SUITE, "text_lm")
  bench = config_lib.load_file(
      os.path.join(ROOT, "configs", "bench", "cpu.py") + ":full")
  method = bench.methods.meta_attention_adamw.copy_and_resolve_references()
  with method.unlocked():
    method.optim.adapt_start_fraction = START
  runs = variants.run(bench.workloads.text_lm, method, LR, (0, 1, 2))
  row = variants.row(f"adapt_start_fraction {START}", runs, suite["target"])
  row["multiplier"] = [[p["train"]["meta_lr/global_multiplier"]
                        for p in r["curve"]] for r in runs]
  lines = [f"text_lm, target {suite['target']:.4f} (the suite's), base rate "
           f"{LR:g}, seeds 0-2. "
           f"{host.describe(jax.__version__, jax.devices()[0].device_kind)}",
           "", f"- steps to target: {row['steps_to_target']}",
           "- final accuracy: " + ", ".join(
               f"{a:.4f}" for a in row["final_accuracy"]),
           "- multiplier at each evaluation (every 32 steps):"]
  lines += ["  " + ", ".join(f"{m:.2f}" for m in ms)
            for ms in row["multiplier"]]
  with open(os.path.join(OUT, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(OUT, "results.json"), "w") as f:
    json.dump(row, f, indent=1)
  print("\n".join(lines))


if __name__ == "__main__":
  main()
