"""Meta-trains the gradient transformer's network (accel.meta.trainer).

  python launch/meta_train.py --config configs/meta/default.py \
      --workdir W

Running the same command again in the same workdir resumes. Uses the GPU
when JAX finds one, the CPU otherwise.
"""

import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from accel.meta import trainer
from accel.train import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Meta-training config file, optionally `file.py:variant`.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Checkpoints, TensorBoard events and the weights file "
    "go here; a run started in a workdir with checkpoints resumes.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  trainer.run(_CONFIG.value, _WORKDIR.value)
  weights = os.path.join(_WORKDIR.value, trainer.WEIGHTS_NAME)
  print(f"Weights: {weights} (metadata in {trainer.METADATA_NAME} "
        "beside it); copy both into accel/optim/weights/ to ship them.")


if __name__ == "__main__":
  cli.run(main)
