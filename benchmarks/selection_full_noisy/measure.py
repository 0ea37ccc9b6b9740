"""Is the break-even controller what keeps the stale-loss filter from
paying on the full suite's noisy digits? There the target falls at steps
60-80, before the controller's first "on" (step 100). This runs
`stale_drop` (configs/bench/cpu.py:full) with the controller off, the
filter on from its 20th step, at the rate the suite tuned for it (0.03),
seeds 0-2, against the suite's own stored trials of AdamW and of
stale_drop under the controller (same machine model,
benchmarks/cpu_full/results.json; the suite's target).

  .venv/bin/python benchmarks/selection_full_noisy/measure.py

Writes results.md and results.json beside this file. Run it alone on the
CPU (the full suite paused): its times are compared with the suite's.
"""

import json
import os

import jax
import numpy as np

from accel.bench import host
from accel.bench import variants
from accel.train import config as config_lib

OUT = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(OUT))
SUITE = os.path.join(ROOT, "benchmarks", "cpu_full", "results.json")
LR = 0.03


def main():
  suite = variants.stored_workload(SUITE, "digits_noisy")
  target = suite["target"]
  bench = config_lib.load_file(
      os.path.join(ROOT, "configs", "bench", "cpu.py") + ":full")
  workload = bench.workloads.digits_noisy
  method = bench.methods.stale_drop.copy_and_resolve_references()
  with method.unlocked():
    method.overrides.selection.controller = "off"
  runs = variants.run(workload, method, LR, (0, 1, 2))
  rows = [variants.row("AdamW, uniform batches (suite)",
                       suite["trials"]["adamw"][str(LR)], target),
          variants.row("stale_drop under the controller (suite)",
                       suite["trials"]["stale_drop"][str(LR)], target),
          variants.row("stale_drop, controller off", runs, target)]
  base = np.mean(rows[0]["seconds_to_target"])
  lines = [f"digits_noisy, target accuracy {target:.4f} (the full suite's),"
           f" lr {LR:g}, seeds 0-2. "
           f"{host.describe(jax.__version__, jax.devices()[0].device_kind)}",
           "", "| variant | steps to target | x AdamW (mean s) | final acc "
           "| worst class | ms/step |", "|---" * 6 + "|"]
  for r in rows:
    ratio = variants.ratio_text(r["seconds_to_target"], base)
    lines.append(
        f"| {r['variant']} | {r['steps_to_target']} | {ratio} | "
        + ", ".join(f"{a:.4f}" for a in r["final_accuracy"]) + " | "
        + ", ".join(f"{a:.3f}" for a in r["worst_class"])
        + f" | {r['step_ms']:.1f} |")
  open(os.path.join(OUT, "results.md"), "w").write("\n".join(lines) + "\n")
  json.dump({"target": target, "rows": rows},
            open(os.path.join(OUT, "results.json"), "w"), indent=1)
  print("\n".join(lines))


if __name__ == "__main__":
  main()
