"""The gradient transformer: AdamW equivalence, bounds, optax conventions,
weights files, orbax state, sharding."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from accel import optim
from accel.optim import gt_network
from accel.optim import gt_transform

ARCH = gt_network.Architecture()


def _params(dtype=jnp.float32):
  return {"dense": {"kernel": jnp.linspace(-1, 1, 15, dtype=dtype).reshape(
      5, 3), "bias": jnp.zeros((3,), dtype)},
          "scale": jnp.asarray(2.0, dtype),
          "empty": jnp.zeros((0, 4), dtype)}


def _grads(params, key):
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return treedef.unflatten([
      (jax.random.normal(k, p.shape) + 0.3 * p.astype(jnp.float32)).astype(
          p.dtype) for k, p in zip(keys, leaves)])


def _run(tx, params, steps=12, value=True, jit=True):
  state = tx.init(params)
  update = jax.jit(tx.update) if jit else tx.update
  for i in range(steps):
    grads = _grads(params, jax.random.PRNGKey(i))
    kwargs = {"value": jnp.float32(2.0 / (i + 1))} if value else {}
    updates, state = update(grads, state, params, **kwargs)
    params = optax.apply_updates(params, updates)
  return params, state


def _random_weights(scale=3.0, seed=1):
  return gt_network.init_weights(ARCH, seed=seed, output_scale=scale)


def _close(a, b, **kw):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(
      np.asarray(x, np.float32), np.asarray(y, np.float32), **kw), a, b)


@pytest.mark.parametrize("value", [True, False])
def test_untrained_equals_adamw(value):
  schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 3, 12)
  mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
  ref, _ = _run(optax.adamw(schedule, weight_decay=0.1, mask=mask), _params(),
                value=False)
  got, _ = _run(optim.gradient_transformer(schedule, weight_decay=0.1,
                                           mask=mask, weights=None),
                _params(), value=value)
  _close(got, ref, rtol=1e-6, atol=1e-7)


def test_zero_output_layer_of_any_weights_equals_adamw():
  weights = gt_network.zero_head(_random_weights())
  ref, _ = _run(optax.adamw(3e-3, weight_decay=0.01), _params())
  got, _ = _run(optim.gradient_transformer(3e-3, weight_decay=0.01,
                                           weights=weights), _params())
  _close(got, ref, rtol=1e-6, atol=1e-7)


def test_random_weights_change_the_update_but_stay_bounded():
  params = _params()
  tx = optim.scale_by_gradient_transformer(_random_weights(scale=50.0),
                                           max_multiplier=4.0, max_mix=1.0)
  state = tx.init(params)
  adam = optax.scale_by_adam()
  adam_state = adam.init(params)
  for i, g_scale in enumerate([1e6, 0.0, 1e-12, 1.0, 1e4]):
    grads = jax.tree.map(lambda g: g * g_scale,
                         _grads(params, jax.random.PRNGKey(i)))
    u, state = jax.jit(tx.update)(grads, state, params,
                                  value=jnp.float32(1e9))
    ua, adam_state = adam.update(grads, adam_state, params)
    for leaf in jax.tree.leaves(u):
      assert np.isfinite(np.asarray(leaf)).all()
    # Each of the five directions is at most ~1/(1-b1) = 10 in size, mixed
    # with |a_k| <= 1 and scaled by at most 4.
    bound = 4.0 * (1 + 2 * 4) * 10.0
    assert max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(u)
               if x.size) <= bound
    assert np.all(np.asarray(state.lr_multiplier_T) <= 4.0 + 1e-5)
    assert np.all(np.asarray(state.lr_multiplier_T) >= 0.25 - 1e-6)
    assert np.all(np.abs(np.asarray(state.mix_TxK)) <= 1.0)
  assert not np.allclose(np.asarray(u["dense"]["kernel"]),
                         np.asarray(ua["dense"]["kernel"]))


def test_state_window_records_features_and_loss():
  _, state = _run(optim.scale_by_gradient_transformer(None, update_every=1),
                  _params(), steps=3)
  assert state.window_TxHxR.shape == (4, ARCH.history,
                                      gt_transform.STORED_FEATURES)
  valid = np.asarray(state.window_TxHxR[..., 0])
  np.testing.assert_array_equal(valid[:, -3:], 1.0)
  np.testing.assert_array_equal(valid[:, :-3], 0.0)
  np.testing.assert_allclose(np.asarray(state.loss_H[-3:]),
                             np.log([2.0, 1.0, 2.0 / 3]), rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(state.loss_valid_H),
                                [0] * 5 + [1] * 3)
  assert np.isfinite(np.asarray(state.window_TxHxR)).all()  # empty leaf too


def test_refreshes_every_k_steps_and_averages_the_loss():
  params = _params()
  tx = optim.scale_by_gradient_transformer(_random_weights(), update_every=4)
  state = tx.init(params)
  update = jax.jit(tx.update)
  mults = []
  for i in range(9):
    grads = _grads(params, jax.random.PRNGKey(i))
    _, state = update(grads, state, params, value=jnp.float32(i + 1.0))
    mults.append(np.asarray(state.lr_multiplier_T))
  # Refreshed at steps 0, 4 and 8 (counting from 0), held in between.
  for i in (1, 2, 3):
    np.testing.assert_array_equal(mults[i], mults[0])
  assert not np.array_equal(mults[4], mults[0])
  np.testing.assert_array_equal(np.asarray(state.loss_valid_H)[-3:], 1.0)
  # Each pushed loss is the mean since the previous refresh: 1, then
  # mean(2..5) = 3.5, then mean(6..9) = 7.5.
  np.testing.assert_allclose(np.exp(np.asarray(state.loss_H)[-3:]),
                             [1.0, 3.5, 7.5], rtol=1e-5)
  assert float(state.loss_n) == 0.0
  valid = np.asarray(state.window_TxHxR[0, :, 0])
  np.testing.assert_array_equal(valid, [0] * 5 + [1] * 3)


def test_state_round_trips_through_orbax(tmp_path):
  # Orbax refuses zero-size arrays whatever the optimizer, so none here.
  params = _params()
  del params["empty"]
  tx = optim.gradient_transformer(1e-3, weights=_random_weights())
  _, state = _run(tx, params, steps=3)
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(tmp_path / "state", state)
    ckpt.wait_until_finished()
    restored = ckpt.restore(tmp_path / "state", jax.eval_shape(lambda: state))
  jax.tree.map(np.testing.assert_array_equal, restored, state)
  assert jax.tree.structure(restored) == jax.tree.structure(state)


def test_weights_file_round_trip_and_errors(tmp_path):
  weights = _random_weights()
  path = str(tmp_path / "w.msgpack")
  gt_network.save_weights(path, weights, ARCH, {"note": "test"})
  loaded, arch, meta = gt_network.load_weights(path)
  assert arch == ARCH and meta == {"note": "test"}
  jax.tree.map(np.testing.assert_array_equal, loaded, weights)
  # A file made for another architecture names what does not fit.
  other = gt_network.Architecture(width=8, num_heads=2)
  bad = str(tmp_path / "other.msgpack")
  gt_network.save_weights(bad, gt_network.init_weights(other), ARCH)
  with pytest.raises(ValueError, match="do not fit .* architecture"):
    gt_network.load_weights(bad)
  with pytest.raises(ValueError, match="history=4 does not match the "
                     "history 8"):
    optim.scale_by_gradient_transformer(path, history=4)
  junk = tmp_path / "junk.msgpack"
  junk.write_bytes(b"not msgpack at all")
  with pytest.raises(ValueError, match="not a gradient transformer weights"):
    optim.scale_by_gradient_transformer(str(junk))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    optim.scale_by_gradient_transformer(str(tmp_path / "missing.msgpack"))
  with pytest.raises(ValueError, match="not gradient transformer weights"):
    optim.scale_by_gradient_transformer({"kernel": jnp.ones(3)})


def test_shipped_weights_load_with_metadata():
  params, arch, meta = gt_network.load_weights(gt_network.DEFAULT_WEIGHTS)
  assert arch.history == 8
  assert meta["meta_iterations"] > 0 and "command" in meta
  side = os.path.splitext(gt_network.DEFAULT_WEIGHTS)[0] + ".json"
  assert os.path.exists(side)
  # The shipped weights are trained: their output layer is not AdamW's zero.
  assert float(jnp.abs(params["head"]["kernel"]).sum()) > 0


@pytest.mark.slow
def test_shipped_weights_train_the_debug_config_better_than_random():
  """Test loss after 200 steps of the MNIST-1D MLP debug config, with the
  shipped weights against three random weight draws (random output layers:
  arbitrary multipliers and mixes). The weights are an argument of one
  program, vmapped over the four sets: one compile instead of four."""
  from accel import data  # pylint: disable=g-import-not-at-top
  from accel import models  # pylint: disable=g-import-not-at-top
  from accel.train import config as config_lib  # pylint: disable=g-import-not-at-top
  from accel.train import state as state_lib  # pylint: disable=g-import-not-at-top
  from accel.train import step as step_lib  # pylint: disable=g-import-not-at-top
  c = config_lib.load_file(os.path.join(
      os.path.dirname(__file__), "..", "..", "configs",
      "mnist1d_mlp.py:debug,optimizer=gradient_transformer"))
  steps = 200
  source = data.make_source(c.data)
  model = models.make(c.model, source.spec)
  it = source.train_iterator(c.batch_size, c.seed)
  batches = jax.tree.map(lambda *b: np.stack(b),
                         *[dict(next(it)) for _ in range(steps)])
  test = dict(next(iter(source.eval_batches(512, "test", 512))))
  shipped, arch, _ = gt_network.load_weights(gt_network.DEFAULT_WEIGHTS)
  draws = [shipped] + [_random_weights(scale=1.0, seed=s) for s in range(3)]

  def final_loss(weights):
    # The shipped file's update_every, for the random draws too.
    opt = optim.make({**dict(c.optim), "weights": weights,
                      "update_every": arch.update_every}, steps)
    state = state_lib.init_state(model, opt, source.spec, c.seed)
    step = lambda st, b: (step_lib.train_step(
        st, b, model=model, optimizer=opt)[0], None)
    state, _ = jax.lax.scan(step, state, batches)
    loss, _ = step_lib.loss_and_stats(state.params, model, test,
                                      jax.random.PRNGKey(0), False)
    return loss

  losses = jax.jit(jax.vmap(final_loss))(
      jax.tree.map(lambda *w: jnp.stack(w), *draws))
  assert np.all(np.isfinite(losses)), losses
  assert losses[0] < np.mean(losses[1:]), losses


def test_bad_hyperparameters_are_refused_when_built():
  """max_multiplier=0 would make every update zero; a string learning rate
  would fail only inside update(): both are refused at once."""
  for kwargs, message in [
      ({"max_multiplier": 0.0}, "max_multiplier must be >= 1"),
      ({"max_mix": -0.5}, "max_mix must be >= 0"),
      ({"b1": 1.0}, r"b1 must be in \[0, 1\), got 1.0"),
      ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
  ]:
    with pytest.raises(ValueError, match=message):
      optim.gradient_transformer(1e-3, weights=None, **kwargs)
  with pytest.raises(ValueError, match="learning_rate must be a number > 0 "
                     "or an optax schedule, got the string '3e-3'"):
    optim.gradient_transformer("3e-3", weights=None)
  with pytest.raises(ValueError, match=r"learning_rate must be > 0 \(or an "
                     r"optax schedule\), got -0.001"):
    optim.scale_by_gradient_transformer(None, learning_rate=-1e-3)
