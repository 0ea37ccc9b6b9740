r"""How much this machine's speed drifts: two ResNet-20 trials of the suite
trained again, as the suite trains them (accel.bench.suite's run_one), to
compare their ms/step with the journal's records of the same trials.

  python benchmarks/cpu_full/resnet_drift_check.py \
      >> benchmarks/cpu_full/resnet_drift_check.log

AdamW with linear decay at 0.01, seed 0 (a report-seed trial, run twice
on 2026-12-06 in the suite: 128.1 and 139.5 ms/step), and at 0.0003,
seed 100 (a grid trial of 2026-12-03: 169.6 ms/step). The log's runs were
made alone on the 2-core Zen 4 on 2026-12-06, in the afternoon.
"""

import datetime
import os

from accel.bench import suite
from accel.train import config as config_lib

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def main():
  c = config_lib.load_file(os.path.join(_ROOT, "configs", "bench",
                                        "cpu.py:full"))
  method = c.methods.adamw
  method.optim = {**dict(method.optim), "schedule": "linear"}
  print(datetime.datetime.now().isoformat(timespec="minutes"), flush=True)
  for lr, seed in ((0.01, 0), (0.0003, 100)):
    suite.run_one(c.workloads.resnet20_textures, "resnet20_textures",
                  "adamw@linear", method, lr, seed, print)


if __name__ == "__main__":
  main()
