"""Where the level and Prodigy's estimate end, per workload, against AdamW's
tuned rate: why the level on Prodigy helps on one workload and hurts on
others.

  .venv/bin/python benchmarks/meta_attention_prodigy_base/levels.py \
      | grep "AdamW tuned" > benchmarks/meta_attention_prodigy_base/levels.log

For each workload of configs/bench/meta_attention.py:prodigy_base, seed 0
at the default multiplier 1.0: Prodigy's final step-size estimate d (alone
and under the level), the level's exp(level) at 10%, 20%, 40% (where it is
then held) of the run, and AdamW's tuned learning rate from results.json.
"""

import json
import os
import tempfile

import jax
import numpy as np
from optax import contrib
from tensorboard.backend.event_processing import event_accumulator

from accel import train
from accel.bench import trial_configs
from accel.optim import meta_attention
from accel.optim import state_lookup
from accel.train import config as config_lib

HERE = os.path.dirname(os.path.abspath(__file__))


def _level_curve(run_dir):
  acc = event_accumulator.EventAccumulator(os.path.join(run_dir,
                                                        "tensorboard"))
  acc.Reload()
  return {e.step: e.value for e in acc.Scalars("train/meta_lr/level")}


def main():
  suite = config_lib.load_file(os.path.join(
      HERE, "..", "..", "configs", "bench", "meta_attention.py:prodigy_base"))
  with open(os.path.join(HERE, "results.json")) as f:
    tuned = {w: r["summary"]["adamw"]["learning_rate"]
             for w, r in json.load(f)["workloads"].items()}
  for wname, workload in suite.workloads.items():
    out = {}
    for mname in ("prodigy", "meta_attention_prodigy"):
      c = trial_configs.trial_config(workload, suite.methods[mname], 1.0, 0)
      c.log_every = max(1, c.total_steps // 20)
      with tempfile.TemporaryDirectory() as d:
        r = train.run(c, d)
        opt_state = jax.device_get(r["state"].opt_state)
        p = state_lookup.find_state(opt_state, contrib.ProdigyState)
        out[mname] = float(p.estim_lr)
        if mname == "meta_attention_prodigy":
          curve = _level_curve(d)
          steps = sorted(curve)
          at = lambda frac: curve[min(steps, key=lambda s: abs(
              s - frac * c.total_steps))]
          levels = [at(0.1), at(0.2), at(0.4)]
          final = float(np.exp(meta_attention.find_state(opt_state).level))
    print(f"{wname:22s} AdamW tuned {tuned[wname]:.0e} | Prodigy d "
          f"{out['prodigy']:.2e} | under the level d "
          f"{out['meta_attention_prodigy']:.2e}, exp(level) at 10/20/40% "
          f"{levels[0]:.2f}/{levels[1]:.2f}/{levels[2]:.2f} (final "
          f"{final:.2f}), d*level {out['meta_attention_prodigy'] * final:.2e}",
          flush=True)


if __name__ == "__main__":
  main()
