"""The orthogonalised-momentum base: its cost rule, and its updates leaf by
leaf against optax's NAdamW and optax.contrib's Muon."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax import contrib
import pytest

from accel.optim import matrices
from accel.optim import orthogonal


def _params():
  rng = np.random.default_rng(0)
  w = lambda *s: jnp.asarray(rng.normal(size=s) * 0.1, jnp.float32)
  return {"dense0": {"kernel": w(10, 16), "bias": w(16)},
          "narrow": {"kernel": w(16, 8), "bias": w(8)},
          "wide": {"kernel": w(8, 64), "bias": w(64)},
          "square": {"kernel": w(64, 64), "bias": w(64)},
          "classifier": {"head": {"kernel": w(64, 3), "bias": w(3)}}}


def test_cost_is_ns_steps_times_the_smaller_side_over_the_rows():
  dims = contrib.MuonDimensionNumbers(reduction_axis=0, output_axis=1)
  assert orthogonal.ns_cost((256, 256), dims, 5, 64) == pytest.approx(20.0)
  assert orthogonal.ns_cost((128, 512), dims, 5, 4096) == pytest.approx(
      5 * 128 / 4096)
  conv = contrib.MuonDimensionNumbers(reduction_axis=(0, 1, 2),
                                      output_axis=3)
  assert orthogonal.ns_cost((3, 3, 16, 32), conv, 5, 100) == pytest.approx(
      5 * 32 / 100)


def test_the_rule_keeps_the_matrices_whose_cost_is_small_enough():
  params = _params()
  # rows 100, 5 steps: narrow (8) costs 0.4, wide (8) 0.4, square (64) 3.2.
  picked = orthogonal.orthogonalised(params, rows_per_step=100, max_cost=0.5)
  assert picked["narrow"]["kernel"] is not None
  assert picked["wide"]["kernel"] is not None
  assert picked["square"]["kernel"] is None
  assert picked["dense0"]["kernel"] is None  # the input layer: AdamW
  assert picked["classifier"]["head"]["kernel"] is None


def test_rows_per_kernel_path_decide_each_matrix_alone():
  params = _params()
  # square (64) at 1,000 rows costs 0.32: kept; narrow (8) at 10 rows 4.0,
  # wide unnamed (no rows known): NAdamW.
  picked = orthogonal.orthogonalised(
      params, rows_per_step={"square/kernel": 1000, "narrow/kernel": 10},
      max_cost=0.5)
  assert picked["square"]["kernel"] is not None
  assert picked["narrow"]["kernel"] is None
  assert picked["wide"]["kernel"] is None
  assert picked["dense0"]["kernel"] is None  # still the input layer
  # A count for every kernel and the mapping that names it for each agree.
  flat = orthogonal.orthogonalised(params, rows_per_step=100, max_cost=0.5)
  named = orthogonal.orthogonalised(
      params, rows_per_step={p: 100 for p in (
          "dense0/kernel", "narrow/kernel", "wide/kernel", "square/kernel",
          "classifier/head/kernel")}, max_cost=0.5)
  assert flat == named


def _updates(tx, params, steps=4):
  state = tx.init(params)
  rng = np.random.default_rng(1)
  out = []
  for _ in range(steps):
    grads = jax.tree.map(lambda p: jnp.asarray(
        rng.normal(size=p.shape), jnp.float32), params)
    u, state = jax.jit(tx.update)(grads, state, params)
    params = optax.apply_updates(params, u)
    out.append(u)
  return out


def _close(a, b):
  np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_leaf_by_leaf_it_is_nadamw_or_optax_muon(wd):
  params = _params()
  lr = 1e-2
  mixed = _updates(orthogonal.hybrid(lr, rows_per_step=100, max_cost=0.5,
                                     weight_decay=wd), params)
  adamw = _updates(optax.nadamw(lr, weight_decay=wd), params)
  muon = _updates(contrib.muon(
      lr, weight_decay=wd, adam_weight_decay=wd, consistent_rms=0.2,
      muon_weight_dimension_numbers=matrices.hidden_matrices), params)
  for m, a, u in zip(mixed, adamw, muon):
    for name in ("narrow", "wide"):
      _close(m[name]["kernel"], u[name]["kernel"])
    for name in ("square", "dense0"):
      _close(m[name]["kernel"], a[name]["kernel"])
    _close(m["classifier"]["head"]["kernel"],
           a["classifier"]["head"]["kernel"])
    _close(m["narrow"]["bias"], a["narrow"]["bias"])


def test_max_cost_zero_is_nadamw_and_infinity_is_muon_everywhere():
  params = _params()
  for got, want in zip(
      _updates(orthogonal.hybrid(1e-2, rows_per_step=64, max_cost=0.0),
               params), _updates(optax.nadamw(1e-2, weight_decay=0.0),
                                 params)):
    jax.tree.map(_close, got, want)
  for got, want in zip(
      _updates(orthogonal.hybrid(1e-2, rows_per_step=64,
                                 max_cost=float("inf")), params),
      _updates(contrib.muon(1e-2, consistent_rms=0.2,
                            muon_weight_dimension_numbers=(
                                matrices.hidden_matrices)), params)):
    jax.tree.map(_close, got, want)


def test_bad_arguments_are_named():
  for bad in (0, 2.5, {}, {"a/kernel": -1}, {"a/kernel": 1.5}):
    with pytest.raises(ValueError, match=r"rows_per_step must be the "
                       r"examples .* >= 1, or a mapping of kernel paths to "
                       rf"their rows; got {re.escape(repr(bad))}\."):
      orthogonal.hybrid(1e-2, rows_per_step=bad)
  with pytest.raises(ValueError, match="max_cost is a share"):
    orthogonal.hybrid(1e-2, rows_per_step=8, max_cost=-1.0)
