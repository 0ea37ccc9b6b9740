"""Set-up shared by the notebooks in colabs/: the runtime and run sizes.

`runtime()` tells TPU, GPU and CPU apart *without importing jax*, so that a
CPU notebook can still ask for simulated devices (which must be set before
jax starts).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def runtime() -> str:
  """'tpu', 'gpu' or 'cpu', from the environment (jax is not imported)."""
  if (os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME")
      or os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0")):
    return "tpu"
  if shutil.which("nvidia-smi"):
    try:
      subprocess.run(["nvidia-smi", "-L"], check=True, capture_output=True)
      return "gpu"
    except (OSError, subprocess.CalledProcessError):
      pass
  return "cpu"


def simulate_cpu_devices(n: int = 8) -> None:
  """On CPU, present `n` devices to jax (set before jax is imported)."""
  if "jax" in sys.modules:
    raise RuntimeError("simulate_cpu_devices must run before jax is "
                       "imported; restart the runtime and run it first.")
  flag = f"--xla_force_host_platform_device_count={n}"
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " "
                             + flag).strip()
  os.environ.setdefault("JAX_PLATFORMS", "cpu")


def sized(small, large):
  """`small` on CPU (and in the test suite, $ACCEL_NOTEBOOK_SMALL=1),
  `large` on an accelerator."""
  if os.environ.get("ACCEL_NOTEBOOK_SMALL") == "1" or runtime() == "cpu":
    return small
  return large
