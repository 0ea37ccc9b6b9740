r"""Why DoG learns nothing in the full suite: its first step, not the harness.

The digits CNN (configs/digits_cnn.py at its default size), 400 steps,
optax.contrib.dog at multiplier 1.0 through accel's factory; the variant
after the colon is `schedule/reps_rel/weight_decay`:

  for a in cosine/1e-6/1e-4 constant/1e-6/0 constant/1e-3/0 \
      constant/1e-3/0.05; do rm -rf /tmp/dogw; python launch/train.py \
      --config "benchmarks/cpu_full/dog_check.py:$a" --workdir /tmp/dogw \
      --config.progress_bar=False 2>&1 | grep "Final"; done

Output (2026-12-03, 2-core CPU) in dog_check.log.
"""

import os

from accel.train import config as config_lib

_DIGITS = os.path.join(os.path.dirname(__file__), "..", "..", "configs",
                       "digits_cnn.py")


def get_config(arg: str = "cosine/1e-6/1e-4"):
  c = config_lib.load_file(_DIGITS)
  schedule, reps_rel, weight_decay = arg.split("/")
  c.optim = config_lib.optim_section(
      "dog", learning_rate=1.0, schedule=schedule,
      warmup_steps=50 if schedule == "cosine" else 0,
      weight_decay=float(weight_decay), reps_rel=float(reps_rel))
  c.total_steps, c.eval_every, c.checkpoint_every = 400, 100, 0
  return c
