"""Do weights meta-trained at the bound the optimizer ships with (0.25) do
better than the shipped ones (meta-trained at 1.0, used at 0.25)? The full
suite's gradient transformer (configs/bench/cpu.py:full) with another
weights file, on the suite's byte LM (held out) and synthetic task (of the
meta-training family: there the shipped network sits at its bounds and
misses the target its base alone reaches), at the rates the suite tuned
for it, seeds 0-2, against the suite's own stored trials of the shipped
weights and of the base alone (same machine model,
benchmarks/cpu_full/results.json; the suite's targets).

  .venv/bin/python benchmarks/gt_weights_025/measure.py WEIGHTS.msgpack

Writes results.md and results.json beside this file. Run it alone on the
CPU: its times are compared with the suite's.
"""

import json
import os
import sys

import jax
import numpy as np

from accel.bench import host
from accel.bench import variants
from accel.train import config as config_lib

OUT = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(OUT))
SUITE = os.path.join(ROOT, "benchmarks", "cpu_full", "results.json")
# The rates the full suite tuned for the gradient transformer (and its
# base alone) on each workload.
RATES = {"text_lm": 0.03, "synthetic": 0.001}


def _row(name, runs, target):
  out = variants.row(name, runs, target)
  out["final_coefficients"] = [
      {k: r["curve"][-1]["train"].get(f"direction/{k}_mean")
       for k in ("slow", "gradient")} for r in runs]
  return out


def main(argv):
  if len(argv) != 2 or not os.path.exists(argv[1]):
    raise SystemExit(f"usage: {argv[0]} WEIGHTS.msgpack (got {argv[1:]})")
  weights = os.path.abspath(argv[1])
  bench = config_lib.load_file(
      os.path.join(ROOT, "configs", "bench", "cpu.py") + ":full")
  lines = [f"Weights: {os.path.relpath(weights, ROOT)}. "
           f"{host.describe(jax.__version__, jax.devices()[0].device_kind)}",
           ""]
  report = {"weights": os.path.relpath(weights, ROOT), "workloads": {}}
  for wname, lr in RATES.items():
    suite = variants.stored_workload(SUITE, wname)
    target = suite["target"]
    adamw_s = float(np.mean(
        suite["summary"]["adamw"]["seconds_to_target"]["values"]))
    method = bench.methods.gradient_transformer.copy_and_resolve_references()
    with method.unlocked():
      method.optim.weights = weights
    runs = variants.run(bench.workloads[wname], method, lr, (0, 1, 2))
    key = f"{lr:g}"
    rows = [_row("base alone (orthogonal_hybrid), suite",
                 suite["trials"]["orthogonal_hybrid"][key], target),
            _row("gradient transformer, shipped weights, suite",
                 suite["trials"]["gradient_transformer"][key], target),
            _row("gradient transformer, these weights", runs, target)]
    report["workloads"][wname] = {"target": target, "learning_rate": lr,
                                  "adamw_seconds": adamw_s, "rows": rows}
    lines += [f"## {wname}", "",
              f"Target accuracy {target:.4f} (the suite's), lr {lr:g}, "
              f"seeds 0-2; tuned AdamW's mean {adamw_s:.1f} s to it.", "",
              "| variant | steps to target | x AdamW (mean s) | final acc "
              "| ms/step | slow, gradient coefficients (mean over tensors) "
              "at the end |", "|---" * 6 + "|"]
    for r in rows:
      coef = "; ".join(
          ", ".join("-" if c[k] is None else f"{c[k]:+.2f}"
                    for k in ("slow", "gradient"))
          for c in r["final_coefficients"])
      lines.append(
          f"| {r['variant']} | {r['steps_to_target']} | "
          f"{variants.ratio_text(r['seconds_to_target'], adamw_s)} | "
          + ", ".join(f"{a:.4f}" for a in r["final_accuracy"])
          + f" | {r['step_ms']:.1f} | {coef} |")
    lines.append("")
  with open(os.path.join(OUT, "results.md"), "w") as f:
    f.write("\n".join(lines))
  with open(os.path.join(OUT, "results.json"), "w") as f:
    json.dump(report, f, indent=1)
  print("\n".join(lines))


if __name__ == "__main__":
  main(sys.argv)
