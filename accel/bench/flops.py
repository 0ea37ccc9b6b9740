"""FLOPs of a compiled step and the model FLOPs utilisation (MFU) they give.

A step's FLOPs are what XLA's cost analysis counts for the compiled program
(forward, backward and the optimizer update; no rematerialisation unless
the model asks for it). MFU is those FLOPs per second of train time over
the chip's dense peak for the compute dtype, from the vendors' data sheets.
Chips not in the table (CPUs among them) get no MFU.
"""

from __future__ import annotations

# Dense (no sparsity) peak FLOP/s per chip, by a substring of jax's
# device_kind, most specific first.
PEAK_FLOPS = {
    "bfloat16": (
        ("H100 PCIe", 756e12), ("H100", 989.4e12), ("H200", 989.4e12),
        ("A100", 312e12), ("L4", 121e12), ("TPU v5 lite", 197e12),
        ("TPU v5p", 459e12), ("TPU v4", 275e12), ("TPU v6", 918e12)),
    "float32": (
        ("H100 PCIe", 51e12), ("H100", 67e12), ("H200", 67e12),
        ("A100", 19.5e12)),
}


def step_flops(compiled) -> float | None:
  """FLOPs of one call of a compiled program (None where the backend does
  not say)."""
  try:
    analysis = compiled.cost_analysis()
  except (AttributeError, NotImplementedError):
    return None
  if isinstance(analysis, (list, tuple)):  # older jax: one per device
    analysis = analysis[0] if analysis else {}
  flops = (analysis or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def peak_flops(device_kind: str, dtype: str = "bfloat16") -> float | None:
  """The chip's dense peak for `dtype`, or None when not in the table."""
  for name, peak in PEAK_FLOPS.get(dtype, ()):
    if name in device_kind:
      return peak
  return None


def mfu(flops_per_step: float | None, seconds_per_step: float,
        peak: float | None) -> float | None:
  """FLOPs per second over the peak (None without both)."""
  if not flops_per_step or not peak or seconds_per_step <= 0:
    return None
  return flops_per_step / seconds_per_step / peak
