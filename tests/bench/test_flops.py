"""Step FLOPs from XLA's cost analysis, chip peaks and MFU."""

import jax
import jax.numpy as jnp
import pytest

from accel.bench import flops


def test_step_flops_count_a_matmul():
  f = jax.jit(lambda a, b: a @ b)
  compiled = f.lower(jnp.ones((64, 128)), jnp.ones((128, 32))).compile()
  assert flops.step_flops(compiled) == 2 * 64 * 128 * 32


def test_peaks_and_mfu():
  assert flops.peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12
  assert flops.peak_flops("NVIDIA H100 PCIe") == 756e12
  assert flops.peak_flops("NVIDIA H200", "float32") == 67e12
  assert flops.peak_flops("cpu") is None
  assert flops.mfu(989.4e9, 0.002, 989.4e12) == pytest.approx(0.5)
  assert flops.mfu(None, 0.002, 989.4e12) is None
  assert flops.mfu(1e9, 0.002, None) is None
