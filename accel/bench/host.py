"""The machine a suite runs on, in one line: trials timed on two machines do
not compare (nor do their step counts: XLA:CPU compiles for the host's
instruction set)."""

from __future__ import annotations

import os
import platform

# /proc/cpuinfo fields that tell CPU generations apart where the model name
# does not: virtual machines often report a bare "AMD EPYC" for Zen 2 and
# Zen 4 alike, and those differ 2x in step time here.
_GENERATION = ("cpu family", "model", "stepping")


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
  """The CPU's model name with its family, model and stepping numbers
  (from `cpuinfo` on Linux), else the platform's processor string, else
  the architecture."""
  fields = {}
  try:
    with open(cpuinfo) as f:
      for line in f:
        if not line.strip():
          break  # the first processor is enough
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
  except OSError:
    pass
  if "model name" not in fields:
    return platform.processor() or platform.machine()
  numbers = [f"{k} {fields[k]}" for k in _GENERATION if k in fields]
  return fields["model name"] + (f" ({', '.join(numbers)})"
                                 if numbers else "")


def describe(jax_version: str, device_kind: str) -> str:
  return (f"{cpu_model()} ({platform.machine()}), {os.cpu_count()} CPU "
          f"cores, jax {jax_version} on {device_kind}")
