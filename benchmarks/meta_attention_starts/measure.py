"""The meta-attention level's options, started at 0.1x, 1x and 10x its
default base rate (issue 19: one run at the defaults should reach the
target from any of them). Runs `meta_attention_adamw` with each arm's
options on a suite's workloads, seeds 0-2, on that suite's stored targets.

  .venv/bin/python benchmarks/meta_attention_starts/measure.py [ARMS [SUITE]]

ARMS (the table ARMS below), in the order they were run (README.md):
`warmup`: the level learning from step 0 (today's default) against held
at 1 until the warm-up ends (`adapt_start_fraction` = warm-up steps /
total steps), since during a warm-up the hypergradient says "raise" (on
the held-out byte LM the level is 1.89x at the end of its 32-step warm-up,
benchmarks/meta_attention_start_lm); `travel`: a faster level
(level_rate 3), over today's trace and over a 1,000-step one; `range`: the
latter with bounds 100x either way; `step`: that with the level's step
bounded (max_level_step 0.1); `lm`: today's defaults and `travel`'s
1,000-step arm. SUITE (SUITES below): `v2` (the default), the five
workloads of configs/bench/meta_attention.py:v2 (issue 19's quick
acceptance suite) on benchmarks/meta_attention_v2/results.json; `lm`, the
full CPU suite's held-out byte LM on benchmarks/cpu_full/results.json.

Writes results_ARMS.md and results_ARMS.json beside this file (with
SUITE `lm`: results_ARMS_lm.*).
"""

import argparse
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
# Each suite: its config, its stored results (the targets) and the
# workloads measured (None: all of the config's).
SUITES = {
    "v2": ("meta_attention.py:v2", "meta_attention_v2", None),
    "lm": ("cpu.py:full", "cpu_full", ("text_lm",)),
}
SEEDS = (0, 1, 2)
STARTS = {"default": 1.0, "from_10x": 10.0, "from_tenth": 0.1}
# The options of meta_attention_adamw compared, each the one before plus
# one change; adapt_start_fraction "warmup" is the workload's warm-up share.
FAST = {"level_rate": 3.0}
LONG = {**FAST, "horizon": 1000.0}
WIDE = {**LONG, "max_multiplier": 100.0}
STEP = {**WIDE, "max_level_step": 0.1}
# Each set of arms: each arm's name and options.
ARMS = {
    "warmup": (("step 0", {}),
               ("warm-up end", {"adapt_start_fraction": "warmup"})),
    "travel": (("level_rate 3", FAST), ("level_rate 3, horizon 1000", LONG)),
    "range": (("level_rate 3, horizon 1000, max_multiplier 100", WIDE),),
    "step": (("level_rate 3, horizon 1000, max_multiplier 100, "
              "max_level_step 0.1", STEP),),
    "lm": (("today", {}), ("level_rate 3, horizon 1000", LONG)),
}


def _warmup_fraction(workload) -> float:
  c = trial_configs.workload_config(workload)
  return c.optim.warmup_steps / c.total_steps


def main(arms: str, suite: str):
  config, stored, names = SUITES[suite]
  bench = config_lib.load_file(os.path.join(ROOT, "configs", "bench", config))
  stored = os.path.join(ROOT, "benchmarks", stored, "results.json")
  rows, lines = [], [
      f"{host.describe(jax.__version__, jax.devices()[0].device_kind)}", "",
      "| workload | start | arm | steps to target | final "
      "accuracy | multiplier at each evaluation (seed 0) |",
      "|---|---|---|---|---|---|"]
  for wname in names or bench.workloads:
    workload = bench.workloads[wname]
    target = variants.stored_workload(stored, wname)["target"]
    for start, factor in STARTS.items():
      lr = factor * meta_attention.DEFAULT_LEARNING_RATE
      for arm, options in ARMS[arms]:
        method = bench.methods.meta_attention_adamw.copy_and_resolve_references()
        with method.unlocked():
          for key, value in options.items():
            method.optim[key] = (_warmup_fraction(workload)
                                 if value == "warmup" else value)
        runs = variants.run(workload, method, lr, SEEDS,
                            name=f"{wname} {start} {arm}")
        row = variants.row(arm, runs, target)
        row.update(workload=wname, start=start, lr=lr, target=target,
                   options=dict(method.optim),
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
  name = f"results_{arms}" + ("" if suite == "v2" else f"_{suite}")
  with open(os.path.join(OUT, name + ".md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(OUT, name + ".json"), "w") as f:
    json.dump(rows, f, indent=1)


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("arms", nargs="?", default="warmup", choices=ARMS)
  parser.add_argument("suite", nargs="?", default="v2", choices=SUITES)
  args = parser.parse_args()
  main(args.arms, args.suite)
