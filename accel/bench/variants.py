"""A suite method, changed, rerun against the suite's own stored trials.

A suite run keeps every trial's curve in W/results.json. To ask what one
change to a method does (another bound, another weights file, a controller
switched off) without rerunning the suite, run the changed method on the
same workload, rate and seeds, on the same machine model, and read both on
the suite's own target:

  stored = variants.stored_workload("benchmarks/cpu_full/results.json", "text_lm")
  runs = variants.run(bench.workloads.text_lm, method, 0.03, seeds=(0, 1, 2))
  rows = [variants.row("suite", stored["trials"]["gradient_transformer"]["0.03"],
                       stored["target"]),
          variants.row("changed", runs, stored["target"])]

The scripts in benchmarks/ that do this (selection_full_noisy,
gt_weights_025, cpu_full/resnet_nesterov_check) write their own tables
from these rows.
"""

from typing import Any, Callable, Sequence

import numpy as np

from accel.bench import report
from accel.bench import suite
from accel.bench import trial as trial_lib


def stored_workload(results_path: str, workload: str) -> dict[str, Any]:
  """One workload's entry of a suite's results.json (target, summary,
  trials by method and learning rate)."""
  workloads = report.load_results(results_path)["workloads"]
  if workload not in workloads:
    raise ValueError(f"workload {workload!r} is not in {results_path}; it "
                     f"has {sorted(workloads)}")
  return workloads[workload]


def run(workload, method, lr: float, seeds: Sequence[int],
        log: Callable[..., None] = print,
        name: str = "variant") -> list[dict[str, Any]]:
  """Trials of `method` (a suite config's method entry) on `workload` at
  `lr`, one per seed, as the suite runs them (suite.run_one: the
  workload's eval interval and maximum runtime), logged under `name`."""
  return [suite.run_one(workload, name, name, method, lr, seed, log)
          for seed in seeds]


def row(name: str, runs: Sequence[dict[str, Any]],
        target: float) -> dict[str, Any]:
  """Steps and train seconds to `target` (None where a run misses it),
  final accuracy and worst-class accuracy (where the curves have it) per
  run, and the mean step time."""
  reach = [trial_lib.first_reach(r["curve"], target) for r in runs]
  out = {"variant": name,
         "steps_to_target": [x["steps_to_target"] for x in reach],
         "seconds_to_target": [x["seconds_to_target"] for x in reach],
         "final_accuracy": [r["final_accuracy"] for r in runs]}
  if all("worst_class_accuracy" in r["curve"][-1] for r in runs):
    out["worst_class"] = [r["curve"][-1]["worst_class_accuracy"]
                          for r in runs]
  out["step_ms"] = float(np.mean([r["step_ms"] for r in runs]))
  return out


def ratio_text(seconds: Sequence[float | None], baseline_s: float) -> str:
  """Mean seconds to target over `baseline_s`, or a miss."""
  if any(s is None for s in seconds):
    return "miss on a seed"
  return f"{np.mean(seconds) / baseline_s:.2f}"
