"""The gradient transformer: exactly its base when the network is silent, the
base's RMS in every tensor whatever the network says, statistics against a
reference, weights files (old ones refused by version)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import serialization

from accel.errors import ConfigError
from accel.optim import gt_network
from accel.optim import gt_transform
from accel.optim import orthogonal


def _params(key=0):
  k = jax.random.split(jax.random.PRNGKey(key), 4)
  return {"dense0": {"kernel": 0.1 * jax.random.normal(k[0], (12, 16)),
                     "bias": jnp.zeros((16,))},
          "dense1": {"kernel": 0.1 * jax.random.normal(k[1], (16, 16)),
                     "bias": jnp.zeros((16,))},
          "classifier": {"kernel": 0.1 * jax.random.normal(k[2], (16, 3)),
                         "bias": jnp.zeros((3,))}}


def _grads(params, seed, scale=1.0):
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(100 + seed), len(leaves))
  return treedef.unflatten([scale * jax.random.normal(k, p.shape)
                            for k, p in zip(keys, leaves)])


def _random_weights(scale=3.0, seed=1):
  w = gt_network.init_weights(
      gt_network.Architecture(history=4, width=8))
  head = w["head"]["kernel"]
  w["head"]["kernel"] = scale * jax.random.normal(jax.random.PRNGKey(seed),
                                                  head.shape)
  return w


def _run(tx, params, steps, grad_scale=1.0):
  state = tx.init(params)
  update = jax.jit(tx.update)
  out = []
  for i in range(steps):
    u, state = update(_grads(params, i, grad_scale), state, params,
                      value=jnp.float32(1.0 / (i + 1)))
    params = optax.apply_updates(params, u)
    out.append(u)
  return out, state, params


@pytest.mark.parametrize("rows_per_step", [4, 100_000])  # Muon off / on
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("silent", ["none", "zero_head"])
def test_a_silent_network_is_the_base(rows_per_step, weight_decay,
                                              silent):
  weights = None if silent == "none" else gt_network.init_weights(
      gt_network.Architecture(history=4, width=8))
  params = _params()
  got, _, _ = _run(gt_transform.gradient_transformer(
      3e-3, rows_per_step=rows_per_step, weight_decay=weight_decay,
      weights=weights), params, 4)
  want, _, _ = _run(optax.with_extra_args_support(orthogonal.hybrid(
      3e-3, rows_per_step=rows_per_step, weight_decay=weight_decay)),
                    params, 4)
  # Float tolerance: XLA fuses the two programs differently, and with
  # Muon on, Newton-Schulz's iterations grow the rounding differences
  # (measured: up to 2e-8 absolute on updates of about 1e-3, with the
  # tests' compile flags). A network that is not silent changes the update
  # by a tenth of its size or more.
  for a, b in zip(got, want):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(
        x, y, rtol=1e-5, atol=1e-7), a, b)


@pytest.mark.parametrize("grad_scale", [1e-12, 1.0, 1e12])
def test_every_tensor_keeps_the_base_rms_and_coefficients_are_bounded(
    grad_scale):
  """A random network with a large head (coefficients near the bounds),
  under tiny and huge gradients: finite updates whose RMS per tensor is
  the base's (the step size is the schedule's alone)."""
  params = _params()
  tx = gt_transform.gradient_transformer(1e-2, rows_per_step=4, weights=_random_weights(),
                            max_mix=0.8)
  base = optax.with_extra_args_support(orthogonal.hybrid(1e-2,
                                                         rows_per_step=4))
  got, state, _ = _run(tx, params, 5, grad_scale)
  want, _, _ = _run(base, params, 5, grad_scale)
  mix = gt_transform.find_mix(state)
  assert mix.shape == (6, 2)
  assert float(jnp.max(jnp.abs(mix))) <= 0.8
  assert float(jnp.max(jnp.abs(mix))) > 0.1  # the network does act
  rms = lambda x: float(jnp.sqrt(jnp.mean(jnp.square(x))))
  changed = 0
  for u, b in zip(jax.tree.leaves(got[-1]), jax.tree.leaves(want[-1])):
    assert np.isfinite(np.asarray(u)).all()
    assert rms(u) == pytest.approx(rms(b), rel=1e-4)
    changed += not np.allclose(u, b, rtol=1e-3)
  assert changed  # ... and the direction differs from the base's


def test_the_shipped_network_acts_within_the_default_bound():
  """By default the shipped network's coefficients are held to
  DEFAULT_MAX_MIX (0.25), under huge gradients too."""
  tx = gt_transform.gradient_transformer(1e-2, rows_per_step=4)
  _, state, _ = _run(tx, _params(), 5, grad_scale=1e3)
  top = float(jnp.max(jnp.abs(gt_transform.find_mix(state))))
  assert 0 < top <= gt_transform.DEFAULT_MAX_MIX == 0.25


def test_a_tensor_larger_than_the_sample_keeps_about_the_base_rms():
  params = {"w": 0.1 * jax.random.normal(jax.random.PRNGKey(0), (300, 200))}
  tx = gt_transform.gradient_transformer(1e-2, rows_per_step=4, weights=_random_weights())
  base = optax.with_extra_args_support(orthogonal.hybrid(1e-2,
                                                         rows_per_step=4))
  got, _, _ = _run(tx, params, 3)
  want, _, _ = _run(base, params, 3)
  rms = lambda x: float(jnp.sqrt(jnp.mean(jnp.square(x))))
  assert rms(got[-1]["w"]) == pytest.approx(rms(want[-1]["w"]), rel=0.05)


def test_tensor_sums_against_numpy():
  trees = [_grads(_params(), i) for i in range(4)]
  got = np.asarray(gt_transform.tensor_sums(*trees))
  leaves = [[np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(t)]
            for t in trees]
  for j, (u, s, g, p) in enumerate(zip(*leaves)):
    want = np.array([u @ u, s @ s, u @ s, g @ g, g @ u, g @ s, p @ p])
    np.testing.assert_allclose(got[:, j], want / u.size, rtol=1e-5,
                               atol=1e-6)
  # A large tensor: an evenly strided sample, not every entry.
  big = jnp.arange(20_000, dtype=jnp.float32) / 20_000
  sums = gt_transform.tensor_sums(big, big, big, big, sample=4096)
  sample = np.asarray(big)[::4]
  np.testing.assert_allclose(float(sums[0, 0]), np.mean(sample ** 2),
                             rtol=1e-5)


def test_features_ignore_the_scale_of_loss_and_gradients():
  """Cosines and ratios only: multiplying every gradient and the loss by
  1e6 changes no feature the network sees."""
  params = _params()
  states = []
  for scale in (1.0, 1e6):
    tx = gt_transform.gradient_transformer(1e-2, rows_per_step=4,
                              weights=_random_weights())
    state = tx.init(params)
    for i in range(3):
      _, state = tx.update(_grads(params, i, scale), state, params,
                           value=jnp.float32(scale / (i + 1)))
    states.append(state[0])
  np.testing.assert_allclose(states[0].window_TxHxF, states[1].window_TxHxF,
                             atol=2e-5)
  relative = lambda s: (s.loss_H - s.loss_H[-1]) * s.loss_valid_H
  np.testing.assert_allclose(relative(states[0]), relative(states[1]),
                             atol=1e-5)
  np.testing.assert_allclose(states[0].mix_TxK, states[1].mix_TxK, atol=1e-4)


def test_fixed_mix_replaces_the_network():
  params = _params()
  fixed = jnp.full((6, 2), 0.25)
  _, state, _ = _run(gt_transform.gradient_transformer(1e-2, rows_per_step=4,
                                          weights=None, fixed_mix=fixed),
                     params, 2)
  np.testing.assert_array_equal(gt_transform.find_mix(state), fixed)


def test_weights_round_trip_and_old_files_are_refused(tmp_path):
  w = _random_weights()
  arch = gt_network.infer_architecture(w)
  path = str(tmp_path / "w.msgpack")
  gt_network.save_weights(path, w, arch, {"note": "test"})
  loaded, arch2, meta = gt_network.load_weights(path)
  assert arch2 == arch and meta == {"note": "test"}
  jax.tree.map(np.testing.assert_array_equal, loaded, w)
  # The first gradient transformer's files: format 1, no "kind".
  old = str(tmp_path / "v1.msgpack")
  with open(old, "wb") as f:
    f.write(serialization.msgpack_serialize(
        {"format_version": 1, "architecture": {"width": 16},
         "metadata": "{}", "params": {"w": np.zeros(3)}}))
  with pytest.raises(ConfigError, match=r"version 1 \(the first gradient "
                     r"transformer's.*reads version 2.*meta_train.py"):
    gt_transform.gradient_transformer(1e-3, rows_per_step=4, weights=old)
  shipped, _, meta = gt_network.load_weights(gt_transform.DEFAULT_WEIGHTS)
  assert meta["snr_end"]["snr/mean_cosine"] > meta["snr_end"]["snr/bar"]
  with pytest.raises(ConfigError, match="gradient-transformer"):
    gt_transform.gradient_transformer(1e-3, rows_per_step=4, weights={"head": {}})
