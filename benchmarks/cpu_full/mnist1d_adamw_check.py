r"""Is meta-attention's MNIST-1D CNN result one of AdamW's coarse grid?

In the full suite (results.md) meta_attention_adamw reaches the 192-channel
MNIST-1D CNN's target (0.9692) at step 200 on every report seed, AdamW at
its tuned 0.03 (cosine) at steps 500-600; AdamW's next grid rate, 0.1,
diverges. This trains AdamW (cosine, as tuned) at the rates between, on
the report seeds, exactly as the suite trains a trial (accel.bench.suite's
run_one: the workload's eval interval, every 100 steps, and its maximum
runtime), and prints each trial's steps and train seconds to the target.
It also trains NAdamW and Muon, the other tuned peers, at 0.02 for the
same question (their grids' best rates were 0.01; 0.03 was worse).

Meta-attention's multiplier falls from 1 to its floor (0.1) by step ~400
(its `meta_lr/global_multiplier` metric): an early anneal. With `horizon`
the script asks whether AdamW annealed as early does as well: AdamW
(cosine, 100 warmup steps as the workload) with its schedule and run cut
to 300 steps, at 0.03 and 0.1 (a schedule horizon the suite's protocol
does not tune for any method).

  python benchmarks/cpu_full/mnist1d_adamw_check.py \
      > benchmarks/cpu_full/mnist1d_adamw_check.log
  python benchmarks/cpu_full/mnist1d_adamw_check.py horizon \
      >> benchmarks/cpu_full/mnist1d_adamw_check.log

Alone on the 2-core Zen 4, 2026-12-06: mnist1d_adamw_check.log (the
first command ran before the script printed each run's length: "1000
steps;" was added to its lines by hand).
"""

import json
import os
import sys

from accel.bench import suite
from accel.bench import trial as trial_lib
from accel.train import config as config_lib

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.join(_HERE, "..", "..")
_RATES = {"adamw": (0.045, 0.065), "muon": (0.02,),
          "nadamw": (0.02,)}
_SEEDS = (0, 1, 2)
_HORIZON = {"adamw": (0.03, 0.1)}  # 300 steps


def main(argv):
  horizon = argv[1:] == ["horizon"]
  c = config_lib.load_file(os.path.join(_ROOT, "configs", "bench",
                                        "cpu.py:full"))
  workload = c.workloads.mnist1d_cnn
  if horizon:
    workload.overrides.total_steps = 300
  with open(os.path.join(_HERE, "results.json")) as f:
    summary = json.load(f)["workloads"]["mnist1d_cnn"]
  target = summary["target"]
  print(f"target {target:.4f}; tuned: " + ", ".join(
      f"{m} {summary['summary'][m]['learning_rate']:g}"
      for m in ("adamw", "nadamw", "muon", "meta_attention_adamw")),
        flush=True)
  for mname, rates in (_HORIZON if horizon else _RATES).items():
    method = c.methods[mname]
    sched = summary["tuning"]["methods"][mname].get("schedule")
    if sched:
      method.optim = {**dict(method.optim), "schedule": sched}
    for lr in rates:
      for seed in _SEEDS:
        r = suite.run_one(workload, "mnist1d_cnn", mname, method, lr, seed,
                          print)
        reach = trial_lib.first_reach(r["curve"], target)
        print(f"  -> {workload.overrides.total_steps} steps; steps to "
              f"target {reach['steps_to_target']}, train s "
              f"{reach['seconds_to_target']}", flush=True)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
