"""ResNet-20 on the textures (the full suite's resnet20_textures): is AdamW's
gap to NAdamW on the suite's tuning seed (best final 0.57 against 0.76)
there on the report seeds too? Both at 0.003 with linear decay, seeds 0-2;
accuracies only (run on a Zen 3; the suite times this workload on a Zen 4).

  .venv/bin/python benchmarks/cpu_full/resnet_nesterov_check.py

Output (2026-12-05, Zen 3): resnet_nesterov_check.log.
"""

import os

from accel.bench import variants
from accel.train import config as config_lib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def main():
  bench = config_lib.load_file(
      os.path.join(ROOT, "configs", "bench", "cpu.py") + ":full")
  workload = bench.workloads.resnet20_textures
  for name in ("adamw", "nadamw"):
    method = bench.methods[name].copy_and_resolve_references()
    with method.unlocked():
      method.optim.schedule = "linear"
    for r in variants.run(workload, method, 0.003, (0, 1, 2)):
      print(name, [round(p["accuracy"], 3) for p in r["curve"]], flush=True)


if __name__ == "__main__":
  main()
