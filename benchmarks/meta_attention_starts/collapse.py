"""The level's first steps on the synthetic task (configs/bench/
meta_attention.py:v2) from 0.001, seed 0, with `measure.py range`'s
options (level_rate 3, horizon 1000, bounds 100x, no step bound), the
multiplier read every 4 steps.

  .venv/bin/python benchmarks/meta_attention_starts/collapse.py > \
      benchmarks/meta_attention_starts/collapse.log
"""

import os

from accel.bench import variants
from accel.train import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def main():
  bench = config_lib.load_file(
      os.path.join(ROOT, "configs", "bench", "meta_attention.py") + ":v2")
  workload = bench.workloads.synthetic.copy_and_resolve_references()
  method = bench.methods.meta_attention_adamw.copy_and_resolve_references()
  with workload.unlocked(), method.unlocked():
    workload.eval_every = 4
    method.optim.update(level_rate=3.0, horizon=1000.0, max_multiplier=100.0)
  (run,) = variants.run(workload, method, 0.001, (0,), log=lambda *a, **k: None)
  print("step | multiplier | train loss | test accuracy")
  for p in run["curve"][:30]:
    print(f"{p['step']} | {p['train']['meta_lr/global_multiplier']:.3g} | "
          f"{p['train']['loss']:.3f} | {p['accuracy']:.3f}")
  print(f"final test accuracy {run['final_accuracy']:.4f}")


if __name__ == "__main__":
  main()
