"""Trains a model from a config file.

  python launch/train.py --config configs/mnist1d_cnn.py --workdir runs/x
  python launch/train.py --config configs/mnist1d_cnn.py:debug --workdir runs/d
  python launch/train.py --config configs/mnist1d_cnn.py \
      --config.optim.learning_rate=3e-3 --config.total_steps=2000 --workdir W

Running the same command again in the same workdir resumes from the newest
checkpoint there. `--print_config` prints every key of the resolved config,
its value and type, and exits: what `--config.KEY=VALUE` can override.

Several devices: `--config.mesh` splits them (see accel/parallel/mesh.py),
e.g. `--config.mesh='(("data",2),("fsdp",4),("tensor",1))'`; bfloat16
compute: `--config.precision.compute=bfloat16`. Several hosts: run the same
command on every host with `--multihost` (launch/tpu_pod.sh,
launch/slurm_gpus.sbatch); `jax.distributed` finds the coordinator on Cloud
TPU and under SLURM, or takes `--coordinator_address`, `--num_processes`
and `--process_id`.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

import accel.parallel
import accel.train
from accel.train import cli
from accel.train import config as config_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally `file.py:variant`.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Checkpoints, TensorBoard events and final metrics go "
    "here; a run started in a workdir that has checkpoints resumes.")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Join a multi-process job (jax.distributed) first.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (--multihost; "
    "found automatically on Cloud TPU and under SLURM).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "Processes in the job (--multihost).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None,
                                   "This process's index (--multihost).")
_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config", False, "Print the resolved config (every key, its value "
    "and type) and exit without training.")
flags.mark_flags_as_required(["config"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _PRINT_CONFIG.value:
    print(config_lib.describe(_CONFIG.value))
    return
  if _WORKDIR.value is None:
    raise app.UsageError("--workdir is required (unless --print_config).")
  if not flags.FLAGS["verbosity"].present:
    # Orbax logs every save step at INFO; keep the terminal to the progress
    # bar, evaluations and warnings unless -v/--verbosity asks for more.
    logging.set_verbosity(logging.WARNING)
  if _MULTIHOST.value:
    accel.parallel.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                              _PROCESS_ID.value)
  accel.train.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main)
