"""The optax contract, checked alike on every transform accel ships (as
optax's contrib/_common_test.py checks its own): jit, `value=`, the optax
wrappers (chain, inject_hyperparams, MultiSteps, masked, multi_transform,
apply_if_finite), dtypes, and state sharding on 8 simulated devices."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from accel import optim
from accel import parallel
from accel.optim import gt_network
from accel.optim import state_lookup

P = jax.sharding.PartitionSpec


def _gt_weights():
  """Gradient-transformer weights with a random head (the network matters)."""
  w = gt_network.init_weights(
      gt_network.Architecture(history=4, width=8))
  head = w["head"]["kernel"]
  w["head"]["kernel"] = jax.random.normal(jax.random.PRNGKey(5), head.shape)
  return w

# The gradient transformer's structural arguments (the cost rule and
# Newton-Schulz run in Python on them): static under inject_hyperparams.
_GT_STATIC = ("weights", "rows_per_step", "mask", "max_cost",
                     "ns_steps", "fixed_mix", "exclude", "mu_dtype")

# name -> (factory of the transform, its static arguments, a kwargs dict).
# Each factory's first argument is the learning rate where it has one.
TRANSFORMS = {
    "scale_by_gradient_transformer": (
        lambda **kw: optim.scale_by_gradient_transformer(**kw),
        _GT_STATIC,
        {"weights": _gt_weights(), "rows_per_step": 64}),
    "gradient_transformer": (
        optim.gradient_transformer, _GT_STATIC,
        {"learning_rate": 1e-3, "weight_decay": 1e-2,
         "weights": _gt_weights(), "rows_per_step": 64}),
    "scale_by_meta_attention_lr": (
        optim.scale_by_meta_attention_lr,
        ("num_heads", "window", "width", "update_every", "seed",
         "learn_groups"),
        {"learning_rate": 1e-3}),
    "meta_attention_adamw": (
        optim.meta_attention_adamw,
        ("num_heads", "window", "width", "update_every", "seed",
         "learn_groups", "mask", "mu_dtype"),
        {"learning_rate": 1e-3, "weight_decay": 1e-2}),
    # The attention network learning, refreshed every other step.
    "meta_attention_network": (
        optim.meta_attention_adamw,
        ("num_heads", "window", "width", "update_every", "seed",
         "learn_groups", "mask", "mu_dtype"),
        {"learning_rate": 1e-3, "weight_decay": 1e-2, "update_every": 2,
         "learn_groups": True}),
}


def _tx(name, **extra):
  make, _, kwargs = TRANSFORMS[name]
  return optax.with_extra_args_support(make(**{**kwargs, **extra}))


def _params(dtype=jnp.float32):
  return {"dense": {"kernel": jnp.linspace(-1.0, 1.0, 32, dtype=dtype)
                    .reshape(8, 4), "bias": jnp.zeros((4,), dtype)},
          "scale": jnp.ones((4,), dtype)}


def _grads(params, seed):
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return treedef.unflatten([
      jax.random.normal(k, p.shape, jnp.float32).astype(p.dtype)
      for k, p in zip(keys, leaves)])


def _steps(tx, params, n, value=True):
  """n jitted updates; returns (last updates, state, params)."""
  state = jax.jit(tx.init)(params)
  step = jax.jit(tx.update)
  for i in range(n):
    kwargs = {"value": jnp.float32(2.0 / (i + 1))} if value else {}
    updates, state = step(_grads(params, i), state, params, **kwargs)
    params = optax.apply_updates(params, updates)
  return updates, state, params


def _finite_like(updates, params):
  for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
    assert u.shape == p.shape and u.dtype == p.dtype
    assert np.isfinite(np.asarray(u, np.float32)).all()


names = pytest.mark.parametrize("name", sorted(TRANSFORMS))
# The wrappers run the complete optimizers, whose chains hold the scale_by_
# transforms (each wrapper compiles the learned networks again).
optimizers = pytest.mark.parametrize(
    "name", ["gradient_transformer", "meta_attention_adamw"])


@names
def test_jitted_init_and_update_with_and_without_value(name):
  params = _params()
  for value in (True, False):
    updates, state, _ = _steps(_tx(name), params, 3, value=value)
    _finite_like(updates, params)
    assert jax.tree.structure(state) == jax.tree.structure(
        _tx(name).init(params))


@names
def test_update_needs_params(name):
  tx = _tx(name)
  params = _params()
  with pytest.raises(ValueError, match="`params`"):
    tx.update(params, tx.init(params))


@names
def test_inject_hyperparams_gives_the_same_updates(name):
  make, static, kwargs = TRANSFORMS[name]
  if "learning_rate" not in kwargs:
    pytest.skip("no hyperparameter to inject")
  params = _params()
  plain, _, _ = _steps(_tx(name), params, 3)
  injected = optax.with_extra_args_support(optax.inject_hyperparams(
      make, static_args=static)(**kwargs))
  got, state, _ = _steps(injected, params, 3)
  # The attention network's Adam step divides gradients near zero by their
  # own size, so the two programs' rounding differences (up to 1e-5
  # relative after two steps) reach 5e-4 on step 3 once the network has
  # moved; a wrongly handled hyperparameter moves an update by O(1).
  rtol = 2e-3 if kwargs.get("learn_groups") else 1e-5
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=rtol,
                                 atol=1e-8), got, plain)
  assert float(state.hyperparams["learning_rate"]) == pytest.approx(
      kwargs["learning_rate"])
  # The injected rate is one the user can change: twice the rate, twice
  # the step. (Exact where the first step is the base optimizer's: the
  # untrained gradient transformer; meta-attention starts at multiplier 1.)
  base = {"weights": None} if "weights" in static else {}
  injected = optax.with_extra_args_support(optax.inject_hyperparams(
      make, static_args=static)(**{**kwargs, **base}))
  fresh = injected.init(params)
  u1, _ = injected.update(_grads(params, 0), fresh, params)
  fresh.hyperparams["learning_rate"] = jnp.asarray(
      2 * kwargs["learning_rate"])
  u2, _ = injected.update(_grads(params, 0), fresh, params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(b, 2 * a, rtol=1e-5,
                                                       atol=1e-9), u1, u2)


@optimizers
def test_multi_steps_accumulates_then_applies(name):
  """MultiSteps(tx, 2): nothing on the first call; on the second, tx's
  update for the mean of the two gradients."""
  params = _params()
  tx = optax.MultiSteps(_tx(name), 2)
  state = tx.init(params)
  g1, g2 = _grads(params, 1), _grads(params, 2)
  u1, state = tx.update(g1, state, params, value=jnp.float32(1.0))
  assert all(not np.any(np.asarray(u)) for u in jax.tree.leaves(u1))
  u2, _ = tx.update(g2, state, params, value=jnp.float32(1.0))
  mean = jax.tree.map(lambda a, b: (a + b) / 2, g1, g2)
  inner = _tx(name)
  want, _ = inner.update(mean, inner.init(params), params,
                         value=jnp.float32(1.0))
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5,
                                 atol=1e-8), u2, want)


@optimizers
def test_masked_passes_the_other_leaves_through(name):
  params = _params()
  mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
  tx = optax.masked(_tx(name), mask)
  grads = _grads(params, 0)
  updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  np.testing.assert_array_equal(updates["scale"], grads["scale"])
  np.testing.assert_array_equal(updates["dense"]["bias"],
                                grads["dense"]["bias"])
  assert not np.allclose(updates["dense"]["kernel"], grads["dense"]["kernel"])


@optimizers
def test_composes_with_chain_multi_transform_and_apply_if_finite(name):
  params = _params()
  label = lambda p: jax.tree.map(lambda x: "a" if x.ndim > 1 else "b", p)
  for tx in (optax.chain(optax.clip_by_global_norm(1.0), _tx(name)),
             optax.multi_transform({"a": _tx(name), "b": optax.sgd(1e-2)},
                                   label),
             optax.apply_if_finite(_tx(name), 3)):
    updates, _, _ = _steps(optax.with_extra_args_support(tx), params, 2)
    _finite_like(updates, params)


@optimizers
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_keeps_the_parameters_dtype(name, dtype):
  params = _params(dtype)
  updates, state, _ = _steps(_tx(name), params, 2)
  _finite_like(updates, params)
  # The moments and traces that mirror the parameters keep their dtype.
  copies = optax.tree_map_params(_tx(name), lambda x: x.dtype, state,
                                 transform_non_params=lambda _: None)
  for d in jax.tree.leaves(copies):
    assert d == dtype


def test_first_moment_dtype_is_honoured():
  params = _params()
  gt = optax.with_extra_args_support(optim.gradient_transformer(
      1e-3, rows_per_step=64, weights=_gt_weights(),
      mu_dtype=jnp.bfloat16))
  _, state, _ = _steps(gt, params, 2)
  moments = state_lookup.find_state(state, optim.GradientTransformerState)
  adam = state_lookup.find_state(moments.base, optax.ScaleByAdamState)
  for tree, dtype in ((moments.slow, jnp.bfloat16), (adam.mu, jnp.bfloat16),
                      (adam.nu, jnp.float32)):
    assert {x.dtype for x in jax.tree.leaves(tree)} == {jnp.dtype(dtype)}
  ma = optim.meta_attention_adamw(1e-3, mu_dtype=jnp.bfloat16)
  _, state, _ = _steps(optax.with_extra_args_support(ma), params, 2)
  adam_state = state.adam[0]
  assert {x.dtype for x in jax.tree.leaves(adam_state.mu)} == {
      jnp.dtype(jnp.bfloat16)}


@names
def test_state_sharding_is_the_same_after_init_and_update(name):
  """On 8 simulated devices, with the state created where
  accel.parallel puts it (every copy of the parameters sharded like them,
  the rest replicated), an update keeps every leaf's sharding."""
  mesh = jax.make_mesh((8,), ("fsdp",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  split = jax.sharding.NamedSharding(mesh, P("fsdp"))
  whole = jax.sharding.NamedSharding(mesh, P())
  shardings = {"dense": {"kernel": split, "bias": whole}, "scale": whole}
  params = jax.device_put(_params(), shardings)
  tx = _tx(name)
  abstract = jax.eval_shape(tx.init, params)
  state_shardings = parallel.sharding.opt_state_shardings(
      tx, abstract, shardings, mesh)
  state = jax.jit(tx.init, out_shardings=state_shardings)(params)
  _, new = jax.jit(tx.update)(_grads(params, 0), state, params,
                              value=jnp.float32(1.0))
  kernels = 0
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(new)):
    assert a.sharding.is_equivalent_to(b.sharding, a.ndim), a.shape
    kernels += a.shape == (8, 4)
    if a.shape == (8, 4):  # a moment or trace of the kernel: split too
      assert a.sharding.is_equivalent_to(split, 2)
  assert kernels, "no copy of the parameters in the state"


@names
def test_integer_parameters_are_refused_by_name(name):
  """Integer leaves would pass through unchanged (no gradient reaches
  them): refused at init, naming the leaf."""
  params = {**_params(), "steps": jnp.zeros((3,), jnp.int32)}
  with pytest.raises(ValueError, match="'steps' is int32"):
    _tx(name).init(params)
  # Masked out, they are fine.
  mask = lambda p: jax.tree.map(
      lambda x: jnp.issubdtype(x.dtype, jnp.floating), p)
  optax.masked(_tx(name), mask).init(params)
