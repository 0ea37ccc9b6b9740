"""Several hosts: `jax.distributed` set-up before anything touches devices.

On a Cloud TPU pod slice, under SLURM, or with the coordinator environment
variables set, `jax.distributed.initialize()` finds the coordinator, the
number of processes and this process's index by itself. Elsewhere (several
processes on one machine, a hand-made cluster) pass them explicitly; on CPU
the processes exchange data through gloo.
"""

from __future__ import annotations

from absl import logging
import jax

from accel.errors import ConfigError


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None,
               local_device_ids: list[int] | None = None) -> None:
  """Joins this process to the job; call once, before any device use."""
  if jax.config.jax_platforms and "cpu" in jax.config.jax_platforms.split(","):
    # XLA:CPU needs a cross-process collective backend for several processes.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id,
                             local_device_ids=local_device_ids)
  logging.info("process %d of %d; %d local of %d devices",
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())


def process_batch_size(global_batch_size: int) -> int:
  """This process's rows of a global batch; raises if they do not divide."""
  n = jax.process_count()
  if global_batch_size % n:
    raise ConfigError(f"batch size {global_batch_size} is not divisible by "
                      f"the {n} processes.")
  return global_batch_size // n
