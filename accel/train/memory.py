"""How much memory a compiled step needs: XLA's own estimate of the
compiled program, the process's peak resident memory, and the device's
peak where the backend reports it."""

from __future__ import annotations

import resource

import jax


def compiled_mb(compiled) -> float | None:
  """A compiled program's peak as XLA plans it: arguments + outputs +
  temporaries, less what donation aliases (None where the backend gives no
  analysis)."""
  try:
    m = compiled.memory_analysis()
  except (AttributeError, NotImplementedError):
    return None
  if m is None:
    return None
  return (m.argument_size_in_bytes + m.output_size_in_bytes
          + m.temp_size_in_bytes - m.alias_size_in_bytes) / 2**20


def memory_stats(compiled) -> dict[str, float | None]:
  """The compiled train step's own estimate (compiled_mb), the process's
  peak resident memory so far, and the device's peak where the backend
  reports one."""
  out = {"compiled_mb": compiled_mb(compiled), "process_peak_rss_mb": None,
         "device_peak_mb": None}
  # ru_maxrss is in KiB on Linux.
  out["process_peak_rss_mb"] = resource.getrusage(
      resource.RUSAGE_SELF).ru_maxrss / 1024
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
  return out
