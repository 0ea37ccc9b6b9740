"""Pruning: each method's masks against a reference, the cubic schedule,
pruned weights staying zero through updates and a resume, and the errors
it names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from accel import train
from accel.train import config as config_lib
from accel.train import prune


def _params():
  rng = np.random.default_rng(0)
  w = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
  return {"dense0": {"kernel": w(6, 8), "bias": w(8)},
          "dense1": {"kernel": w(8, 8), "bias": w(8)},
          "dense2": {"kernel": w(8, 12), "bias": w(12)},
          "classifier": {"head": {"kernel": w(12, 3), "bias": w(3)}}}


def test_only_hidden_kernels_are_prunable():
  which = prune.prunable(_params())
  assert which["dense1"]["kernel"] and which["dense2"]["kernel"]
  assert not which["dense0"]["kernel"]  # the input layer
  assert not which["classifier"]["head"]["kernel"]
  assert not which["dense1"]["bias"]


@pytest.mark.parametrize("share", [0.0, 0.3, 0.75])
def test_magnitude_masks_zero_the_smallest_weights_globally(share):
  params = _params()
  which = prune.prunable(params)
  masks = prune.magnitude_masks(params, which, share)
  prunable = np.concatenate([np.abs(params[k]["kernel"]).ravel()
                             for k in ("dense1", "dense2")])
  kept = np.concatenate([np.asarray(params[k]["kernel"])[
      np.asarray(masks[k]["kernel"])] for k in ("dense1", "dense2")])
  assert float(prune.zero_share(masks, which)) == pytest.approx(
      share, abs=1.5 / prunable.size)
  if share:
    cut = np.sort(prunable)[int(round(share * prunable.size)) - 1]
    assert np.abs(kept).min() > cut
  assert bool(jnp.all(masks["dense0"]["kernel"]))


def test_snip_keeps_the_largest_gradient_times_weight():
  params = _params()
  grads = jax.tree.map(lambda p: jnp.flip(p), params)
  which = prune.prunable(params)
  masks = prune.snip_masks(params, grads, which, 0.5)
  score = lambda k: np.abs(np.asarray(params[k]["kernel"])
                           * np.asarray(grads[k]["kernel"]))
  scores = np.concatenate([score(k).ravel() for k in ("dense1", "dense2")])
  cut = np.quantile(scores, 0.5)
  for k in ("dense1", "dense2"):
    np.testing.assert_array_equal(masks[k]["kernel"], score(k) > cut)


def test_nm_keeps_n_of_every_m_along_the_input_axis():
  params = _params()
  masks = prune.nm_masks(params, prune.prunable(params), 2, 4)
  for k in ("dense1", "dense2"):
    m = np.asarray(masks[k]["kernel"])  # [in, out]
    groups = m.reshape(m.shape[0] // 4, 4, m.shape[1]).sum(axis=1)
    np.testing.assert_array_equal(groups, 2)
    w = np.abs(np.asarray(params[k]["kernel"])).reshape(-1, 4, m.shape[1])
    kept = m.reshape(-1, 4, m.shape[1])
    # Every kept weight of a group is at least as large as every dropped one.
    assert (np.where(kept, w, np.inf).min(1)
            >= np.where(kept, -np.inf, w).max(1)).all()
  # A kernel whose input axis does not divide by m stays dense.
  odd = {"dense1": {"kernel": jnp.ones((6, 4))}}
  assert bool(jnp.all(prune.nm_masks(odd, {"dense1": {"kernel": True}}, 2,
                                     4)["dense1"]["kernel"]))


def test_unit_masks_remove_whole_units_with_their_bias():
  params = _params()
  masks = prune.unit_masks(params, prune.prunable(params), 0.25)
  m = np.asarray(masks["dense2"]["kernel"])
  alive = m.all(axis=0)
  assert (m == alive[None]).all() and alive.sum() == 9  # 3 of 12 removed
  np.testing.assert_array_equal(masks["dense2"]["bias"], alive)
  norms = np.linalg.norm(np.asarray(params["dense2"]["kernel"]), axis=0)
  assert norms[alive].min() > norms[~alive].max()


def test_cubic_schedule():
  s = [float(prune.cubic(t, 100, 500, 0.8)) for t in (0, 100, 300, 500, 900)]
  assert s == pytest.approx([0.0, 0.0, 0.8 * (1 - 0.5 ** 3), 0.8, 0.8])


def _prune_config(tiny_config, **prune_options):
  c = tiny_config(total_steps=12)
  c.model = config_lib.model_section("mlp", hidden=(32, 32))
  c.prune = prune.section(**prune_options)
  return c


@pytest.mark.parametrize("method", ["snip", "magnitude", "nm", "units"])
def test_pruned_weights_stay_zero_through_training_and_resume(
    tmp_path, tiny_config, method):
  options = dict(method=method, sparsity=0.5, every=2, start_step=0,
                 end_step=6)
  straight = train.run(_prune_config(tiny_config, **options),
                       str(tmp_path / "straight"))
  split = str(tmp_path / "split")
  train.run(_prune_config(tiny_config, **options), split, stop_after=8)
  resumed = train.run(_prune_config(tiny_config, **options), split)
  for out in (straight, resumed):
    state = jax.device_get(out["state"])
    for p, k in zip(jax.tree.leaves(state.params),
                    jax.tree.leaves(state.masks)):
      assert (p[~k] == 0).all()
    which = prune.prunable(state.params)
    share = float(prune.zero_share(state.masks, which))
    assert share == pytest.approx(0.5, abs=0.05)
  jax.tree.map(np.testing.assert_array_equal,
               jax.device_get(straight["state"].params),
               jax.device_get(resumed["state"].params))
  jax.tree.map(np.testing.assert_array_equal,
               jax.device_get(straight["state"].masks),
               jax.device_get(resumed["state"].masks))


def test_prune_errors_are_named(tiny_config):
  with pytest.raises(ValueError, match="Unknown prune option 'sparcity'"):
    prune.section(sparcity=0.5)
  for options, match in [
      ({"method": "random"}, "prune.method must be one of"),
      ({"method": "snip", "sparsity": 1.0}, r"in \[0, 1\); got 1.0"),
      ({"method": "nm", "n": 4, "m": 4}, "need 0 < n < m"),
      ({"method": "magnitude", "start_step": 10, "end_step": 5},
       "start_step <= end_step")]:
    c = _prune_config(tiny_config, **options)
    with pytest.raises(ValueError, match=match):
      config_lib.validate(c)
