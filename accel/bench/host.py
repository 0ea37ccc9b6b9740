"""The machine a suite runs on, in one line: trials timed on two machines do
not compare (nor do their step counts: XLA:CPU compiles for the host's
instruction set)."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
  """The CPU's model name (from /proc/cpuinfo on Linux), else the
  platform's processor string, else the architecture."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def describe(jax_version: str, device_kind: str) -> str:
  return (f"{cpu_model()} ({platform.machine()}), {os.cpu_count()} CPU "
          f"cores, jax {jax_version} on {device_kind}")
