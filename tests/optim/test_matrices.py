"""Muon's half of the hybrid: which leaves it takes, how each reads as a
matrix, and that the factory's `muon` orthogonalises exactly those."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from optax import contrib

from accel import optim
from accel.optim import matrices


def _params():
  z = lambda *s: jnp.zeros(s, jnp.float32)
  return {"params": {
      "embed": {"embedding": z(33, 16)},
      "conv0": {"kernel": z(5, 1, 16), "bias": z(16)},
      "conv1": {"kernel": z(5, 16, 16), "bias": z(16)},
      "block0": {"attention": {"query": {"kernel": z(16, 4, 4),
                                         "bias": z(4, 4)},
                               "out": {"kernel": z(4, 4, 16)}},
                 "mlp_in": {"kernel": z(16, 32)}, "norm1": {"scale": z(16)}},
      "pos_embedding": z(1, 17, 16),
      "classifier": {"head": {"kernel": z(16, 10)}},
  }}


def test_hidden_matrices_are_the_hidden_layers_kernels():
  specs = matrices.hidden_matrices(_params())
  flat = {jax.tree_util.keystr(k): v for k, v in
          jax.tree_util.tree_flatten_with_path(
              specs, is_leaf=lambda x: x is None or isinstance(
                  x, contrib.MuonDimensionNumbers))[0]}
  muon = {k for k, v in flat.items() if v is not None}
  p = "['params']"
  assert muon == {
      f"{p}['conv1']['kernel']", f"{p}['block0']['attention']['query']"
      "['kernel']", f"{p}['block0']['attention']['out']['kernel']",
      f"{p}['block0']['mlp_in']['kernel']"}
  mn = contrib.MuonDimensionNumbers
  assert flat[f"{p}['conv1']['kernel']"] == mn((0, 1), 2)
  assert flat[f"{p}['block0']['mlp_in']['kernel']"] == mn((0,), 1)
  assert flat[f"{p}['block0']['attention']['query']['kernel']"] == mn(
      0, (1, 2))
  assert flat[f"{p}['block0']['attention']['out']['kernel']"] == mn(
      (0, 1), 2)


def test_exclude_pattern_is_the_callers():
  specs = matrices.hidden_matrices(_params(), exclude=r"(^|/)conv1$")
  assert specs["params"]["conv0"]["kernel"] is not None
  assert specs["params"]["conv1"]["kernel"] is None


def test_factory_muon_orthogonalises_hidden_kernels_only():
  key = jax.random.split(jax.random.PRNGKey(0), 2)
  params = {"params": {
      "dense1": {"kernel": jax.random.normal(key[0], (32, 16))},
      "classifier": {"head": {"kernel": jax.random.normal(key[1], (16, 4))}}}}
  grads = jax.tree.map(lambda p: jnp.cos(3.0 * p) + 0.1 * p, params)
  tx = optim.make(ml_collections.ConfigDict(
      {"name": "muon", "learning_rate": 0.1}), 100).tx
  updates, _ = tx.update(grads, tx.init(params), params)
  hidden = np.asarray(updates["params"]["dense1"]["kernel"])
  s = np.linalg.svd(hidden, compute_uv=False)
  # Newton-Schulz's quintic leaves singular values in about [0.7, 1.2]:
  # far flatter than the gradient's own spectrum.
  g = np.linalg.svd(np.asarray(grads["params"]["dense1"]["kernel"]),
                    compute_uv=False)
  assert s.max() / s.min() < 2.0 < g.max() / g.min()
  # The head gets optax's AdamW half (Nesterov, as Muon's momentum is).
  head_g = grads["params"]["classifier"]["head"]["kernel"]
  adam = optax.nadamw(0.1, weight_decay=0.0)
  head_u, _ = adam.update(head_g, adam.init(head_g), head_g)
  np.testing.assert_allclose(updates["params"]["classifier"]["head"]["kernel"],
                             head_u, rtol=1e-6)
  # And the whole matches optax's muon given the same split.
  ref = contrib.muon(0.1, consistent_rms=0.2, adam_weight_decay=0.0,
                     muon_weight_dimension_numbers=matrices.hidden_matrices)
  expected, _ = ref.update(grads, ref.init(params), params)
  jax.tree.map(np.testing.assert_allclose, updates, expected)
