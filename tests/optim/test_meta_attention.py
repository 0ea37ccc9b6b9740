"""Meta-attention learning rates: base-schedule equivalence at init, bounds,
direction of adaptation on quadratics, optax conventions."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from accel import optim
from accel.optim import meta_attention as ma
from accel.train import config as config_lib

# The attention network learning alone (the level held at 0).
NET = {"learn_groups": True, "level_rate": 0.0}


def _params():
  return {"a": jnp.ones((6, 4)), "b": jnp.full((4,), 0.5),
          "c": jnp.asarray(1.0)}


def test_first_update_is_the_base_schedule_exactly():
  params = _params()
  tx = ma.scale_by_meta_attention_lr(0.1)
  state = tx.init(params)
  direction = jax.tree.map(lambda p: 0.3 * p + 0.1, params)
  out, state = jax.jit(tx.update)(direction, state, params, value=1.0)
  jax.tree.map(lambda o, d: np.testing.assert_array_equal(o, -0.1 * d), out,
               direction)
  np.testing.assert_array_equal(np.asarray(state.multiplier_T), 1.0)


def test_without_learning_it_is_the_base_schedule():
  params = _params()
  schedule = optax.cosine_decay_schedule(0.1, 20)
  for tx in (ma.scale_by_meta_attention_lr(schedule, level_rate=0.0),
             ma.scale_by_meta_attention_lr(schedule, hyper_lr=0.0, **NET)):
    state = tx.init(params)
    for i in range(5):
      d = jax.tree.map(lambda p, i=i: p * (i + 1.0), params)
      out, state = jax.jit(tx.update)(d, state, params)
      jax.tree.map(lambda o, x, i=i: np.testing.assert_allclose(
          o, -schedule(i) * x, rtol=1e-6), out, d)


def test_defaults_make_an_optimizer_that_is_adamw_when_frozen():
  # No arguments: a valid optimizer at the default rate, level learning.
  params = _params()
  grads = [jax.tree.map(lambda p, i=i: jnp.sin(3 * p + i), params)
           for i in range(4)]
  tx, frozen = ma.meta_attention_adamw(), ma.meta_attention_adamw(
      level_rate=0.0, weight_decay=1e-2)
  adamw = optax.adamw(ma.DEFAULT_LEARNING_RATE, weight_decay=1e-2)
  s, sf, sa = tx.init(params), frozen.init(params), adamw.init(params)
  for g in grads:
    _, s = tx.update(g, s, params, value=1.0)
    uf, sf = frozen.update(g, sf, params)
    ua, sa = adamw.update(g, sa, params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6,
                                                         atol=1e-12), uf, ua)
  assert float(s.meta.level) != 0.0
  np.testing.assert_array_equal(np.asarray(s.meta.multiplier_T), 1.0)
  # No statistics and no network run without learn_groups.
  assert ma.attention_table(s, params) is None


def _quadratic_multiplier(lr, steps=150, **options):
  """Gradient descent (direction = gradient) on 0.5 |x|^2 per group;
  returns the final multipliers and loss."""
  params = {"x": jnp.linspace(1.0, 2.0, 8), "y": jnp.linspace(-1, 1, 5)}
  tx = ma.scale_by_meta_attention_lr(lr, hyper_lr=1e-2, anchor=0.0,
                                     **{**NET, **options})
  state = tx.init(params)
  step = jax.jit(tx.update)
  for _ in range(steps):
    grads = params
    loss = 0.5 * sum(jnp.sum(p**2) for p in jax.tree.leaves(params))
    out, state = step(grads, state, params, value=loss)
    params = optax.apply_updates(params, out)
  return np.asarray(state.multiplier_T), float(loss)


def test_too_small_lr_grows_and_too_large_shrinks():
  assert np.all(_quadratic_multiplier(1e-3)[0] > 1.05)
  # lr 2.5 on curvature 1 diverges (x -> -1.5 x): the multipliers fall
  # until it converges.
  mult, loss = _quadratic_multiplier(2.5, steps=60)
  assert np.all(mult < 0.5) and loss < 1e-6
  # Baydin et al.'s one-step hypergradient (horizon 1) also shrinks lr 1.9,
  # which converges but oscillates (successive gradients point apart).
  assert np.all(_quadratic_multiplier(1.9, steps=40, horizon=1)[0] < 0.95)
  assert np.all(_quadratic_multiplier(1e-3, horizon=1)[0] > 1.05)


def test_multipliers_stay_bounded_under_adversarial_gradients():
  params = _params()
  tx = ma.scale_by_meta_attention_lr(1e-2, hyper_lr=1.0, max_multiplier=5.0,
                                     learn_groups=True)
  state = tx.init(params)
  step = jax.jit(tx.update)
  for i, scale in enumerate([1e8, 0.0, -1e8, 1e-20, 1e8, -1.0] * 3):
    d = jax.tree.map(lambda p: scale * (p + i), params)
    out, state = step(d, state, params, value=jnp.float32(scale))
    m = np.asarray(state.multiplier_T)
    assert np.all(np.isfinite(m)) and np.all(m <= 5.0 + 1e-4)
    assert np.all(m >= 0.2 - 1e-6)
    for leaf in jax.tree.leaves(state.net_params):
      assert np.isfinite(np.asarray(leaf)).all()


def test_hypergradient_matches_finite_differences_on_a_quadratic():
  """The transform's per-group hypergradient, rescaled from its normalised
  (cosine) form, equals d L(theta_1) / d log a_g by finite differences."""
  lr = 0.1
  x0 = {"u": jnp.array([1.0, -2.0, 0.5]), "v": jnp.array([[0.3, -0.7]])}
  curv = {"u": jnp.array([1.0, 3.0, 0.5]), "v": jnp.array([[2.0, 1.0]])}
  grad = lambda x: jax.tree.map(lambda c, p: c * p, curv, x)
  loss = lambda x: sum(jnp.sum(0.5 * c * p**2) for c, p in
                       zip(jax.tree.leaves(curv), jax.tree.leaves(x)))
  tx = ma.scale_by_meta_attention_lr(lr, hyper_lr=0.0, horizon=1, **NET)
  state = tx.init(x0)
  d0 = grad(x0)
  out, state = tx.update(d0, state, x0)
  x1 = optax.apply_updates(x0, out)
  g1 = grad(x1)
  _, state = tx.update(g1, state, x1)
  for i, name in enumerate(sorted(x0)):  # leaves are in key order
    def loss_of(log_a):
      x = dict(x1)
      x[name] = x0[name] - lr * jnp.exp(log_a) * d0[name]
      return loss(x)
    eps = 1e-3
    fd = (loss_of(eps) - loss_of(-eps)) / (2 * eps)
    scale = lr * jnp.sqrt(jnp.sum(g1[name] ** 2) * jnp.sum(d0[name] ** 2))
    got = float(state.hypergrad_T[i] * scale)
    assert got == pytest.approx(float(fd), rel=1e-2, abs=1e-6)


def test_diagnostics_found_inside_a_chain():
  params = _params()
  for learn_groups, network_keys in ((False, set()), (True, {
      "meta_lr/hypergrad_mean", "meta_lr/attention_to_global"})):
    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     ma.meta_attention_adamw(1e-3, learn_groups=learn_groups))
    state = tx.init(params)
    _, state = tx.update(params, state, params)
    diag = ma.diagnostics(state)
    assert float(diag["meta_lr/multiplier_mean"]) == 1.0
    assert set(diag) == {"meta_lr/multiplier_mean", "meta_lr/multiplier_min",
                         "meta_lr/multiplier_max", "meta_lr/level",
                         "meta_lr/global_multiplier"} | network_keys
  assert ma.diagnostics(optax.adamw(1e-3).init(params)) == {}


def test_without_the_network_its_state_holds_only_the_level_and_trace():
  params = _params()
  lean = ma.scale_by_meta_attention_lr(1e-2).init(params)
  full = ma.scale_by_meta_attention_lr(1e-2, learn_groups=True).init(params)
  # The trace (parameter-shaped), its per-tensor mean square, the
  # multipliers (all 1), the global multiplier, the level and the count.
  assert len(jax.tree.leaves(lean)) == len(jax.tree.leaves(params)) + 5
  assert lean.net_params is None and lean.window_TxWxF is None
  assert len(jax.tree.leaves(full)) > len(jax.tree.leaves(lean)) + 20


def test_inject_hyperparams_and_orbax_round_trip(tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  params = _params()
  tx = optax.inject_hyperparams(
      ma.meta_attention_adamw,
      static_args=("num_heads", "window", "width", "update_every",
                   "seed"))(
          learning_rate=1e-3, weight_decay=0.0)
  state = tx.init(params)
  grads = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), params)
  u1, _ = tx.update(grads, state, params, value=1.0)
  state.hyperparams["learning_rate"] = jnp.asarray(2e-3)
  u2, state = tx.update(grads, state, params, value=1.0)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(b, 2 * a, rtol=1e-6),
               u1, u2)
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(tmp_path / "s", state)
    ckpt.wait_until_finished()
    restored = ckpt.restore(tmp_path / "s", jax.eval_shape(lambda: state))
  jax.tree.map(np.testing.assert_array_equal, restored, state)


def test_update_every_holds_the_multipliers_between_refreshes():
  params = _params()
  tx = ma.scale_by_meta_attention_lr(0.1, hyper_lr=0.1, update_every=3,
                                     **NET)
  state = tx.init(params)
  step = jax.jit(tx.update)
  seen = []
  for i in range(7):
    d = jax.tree.map(lambda p: (-1.0) ** i * (p + 0.1 * i), params)
    out, state = step(d, state, params, value=1.0 / (i + 1))
    m = np.asarray(state.multiplier_T)
    seen.append(m)
    for j, (o, x) in enumerate(zip(jax.tree.leaves(out), jax.tree.leaves(d))):
      np.testing.assert_allclose(o, -0.1 * m[j] * x, rtol=1e-6)
  # Refreshes at steps 0, 3, 6: held on 1, 2 and 4, 5; learnt at 3 and 6.
  np.testing.assert_array_equal(seen[0], seen[1])
  np.testing.assert_array_equal(seen[1], seen[2])
  np.testing.assert_array_equal(seen[3], seen[5])
  assert not np.allclose(seen[2], seen[3])
  assert not np.allclose(seen[5], seen[6])


def _level_rate_on_quadratic(lr, steps=120, adapt_steps=100):
  """Gradient descent on 0.5 sum h_i x_i^2, h in [1, 4] (best constant rate
  2 / (1 + 4) = 0.4), with only the level learning; returns the applied
  rate and the final loss."""
  h = jnp.linspace(1.0, 4.0, 16)
  params = {"x": jnp.ones(16)}
  tx = ma.scale_by_meta_attention_lr(lr, hyper_lr=0.0, level_rate=1.0,
                                     max_multiplier=100.0,
                                     adapt_steps=adapt_steps)
  state = tx.init(params)
  step = jax.jit(tx.update)
  for _ in range(steps):
    out, state = step({"x": h * params["x"]}, state, params)
    params = optax.apply_updates(params, out)
  return lr * float(np.exp(state.level)), float(
      0.5 * jnp.sum(h * params["x"] ** 2))


def test_level_settles_near_the_best_rate_from_10x_and_from_0_1x():
  for start in (4.0, 0.04):
    rate, loss = _level_rate_on_quadratic(start)
    # (The network is frozen at its zero output: the level alone moved.)
    assert 0.2 <= rate <= 0.8, (start, rate)
    assert loss < 1e-6, (start, loss)
  # Without the level the 10x rate diverges.
  assert not _level_rate_on_quadratic(4.0, adapt_steps=0)[1] < 1.0


def test_adapt_steps_freezes_the_network_after_them():
  params = _params()
  tx = ma.scale_by_meta_attention_lr(0.1, hyper_lr=0.1, adapt_steps=3,
                                     **NET)
  free = ma.scale_by_meta_attention_lr(0.1, hyper_lr=0.1, **NET)
  state, free_state = tx.init(params), free.init(params)
  step, free_step = jax.jit(tx.update), jax.jit(free.update)
  nets = []
  for i in range(6):
    d = jax.tree.map(lambda p: (-1.0) ** i * (p + 0.1 * i), params)
    out, state = step(d, state, params, value=1.0 / (i + 1))
    free_out, free_state = free_step(d, free_state, params,
                                     value=1.0 / (i + 1))
    nets.append(jax.tree.leaves(state.net_params))
    if i < 3:  # learning on steps 1 and 2 (step 0 has no hypergradient)
      # Two programs, fused differently: equal to a few float32 ulps
      # (measured: 5e-7 relative).
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=4e-6),
                   out, free_out)
  # Learnt at steps 1 and 2; frozen from step 3 on, while the free one
  # goes on learning.
  assert not all(np.array_equal(a, b) for a, b in zip(nets[1], nets[2]))
  for later in nets[3:]:
    jax.tree.map(np.testing.assert_array_equal, later, nets[2])
  assert not all(np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(free_state.net_params), nets[2]))
  with pytest.raises(ValueError, match="adapt_steps must be >= 0"):
    ma.scale_by_meta_attention_lr(0.1, adapt_steps=-1)


def test_rejects_bad_options():
  with pytest.raises(ValueError, match="update_every must be an int >= 1, "
                     "got 0"):
    ma.scale_by_meta_attention_lr(0.1, update_every=0)
  with pytest.raises(ValueError, match=r"horizon must be >= 1 \(steps\), "
                     "got 0.5"):
    ma.scale_by_meta_attention_lr(0.1, horizon=0.5)
  with pytest.raises(ValueError, match="max_multiplier must be >= 1, got 0"):
    ma.scale_by_meta_attention_lr(0.1, max_multiplier=0)
  with pytest.raises(ValueError, match="learning_rate must be > 0"):
    ma.meta_attention_adamw(-1e-3)
  with pytest.raises(ValueError, match="learning_rate must be a number > 0 "
                     "or an optax schedule, got the string '1e-3'"):
    ma.scale_by_meta_attention_lr("1e-3")
  with pytest.raises(ValueError, match="hyper_lr must be >= 0"):
    ma.scale_by_meta_attention_lr(0.1, hyper_lr=-1.0)


def test_chains_after_the_gradient_transformer():
  from accel.optim import factory  # pylint: disable=g-import-not-at-top
  from accel.optim import gt_transform  # pylint: disable=g-import-not-at-top
  from accel.optim import orthogonal  # pylint: disable=g-import-not-at-top
  params = _params()
  grads = [jax.tree.map(lambda p, i=i: jnp.sin(p + i), params)
           for i in range(3)]
  # A silent gradient transformer (= its base) + frozen meta LR is the base.
  chained = optax.chain(
      gt_transform.scale_by_gradient_transformer(None, rows_per_step=64),
      ma.scale_by_meta_attention_lr(1e-2, level_rate=0.0))
  reference = orthogonal.hybrid(1e-2, rows_per_step=64)
  s1, s2 = chained.init(params), reference.init(params)
  for g in grads:
    u1, s1 = chained.update(g, s1, params, value=1.0)
    u2, s2 = reference.update(g, s2, params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                         atol=1e-9), u1, u2)
  # The factory's combination learns its level and reports both parts.
  opt = factory.make({"name": "gradient_transformer", "meta_lr": True,
                      "learning_rate": 1e-2}, total_steps=10,
                     rows_per_step=64)
  state = opt.tx.init(params)
  for g in grads:
    _, state = opt.tx.update(g, state, params, value=1.0)
  assert ma.find_state(state) is not None
  assert gt_transform.find_mix(state).shape == (3, 2)
  assert float(ma.find_state(state).level) != 0.0


def test_attention_table_names_tensors_and_rows_are_distributions():
  params = _params()
  tx = ma.meta_attention_adamw(1e-3, learn_groups=True)
  state = tx.init(params)
  _, state = tx.update(params, state, params, value=1.0)
  table, names = ma.attention_table(state, params)
  assert names == ["a", "b", "c"]
  assert table.shape == (3, 4)
  np.testing.assert_allclose(table.sum(1), 1.0, rtol=1e-5)
  assert ma.attention_table(optax.adam(1e-3).init(params), params) is None


def test_inject_hyperparams_needs_no_static_args():
  # Every numeric default becomes a traced hyperparameter under
  # inject_hyperparams; the structural options default to None instead.
  params = _params()
  tx = optax.inject_hyperparams(ma.meta_attention_adamw)(learning_rate=1e-2)
  state = tx.init(params)
  assert set(state.hyperparams) >= {"learning_rate", "hyper_lr", "anchor"}
  assert not {"num_heads", "window", "width", "update_every",
              "seed", "learn_groups"} & set(state.hyperparams)
  grads = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), params)
  plain = ma.meta_attention_adamw(1e-2)
  want, _ = plain.update(grads, plain.init(params), params, value=1.0)
  got, _ = jax.jit(tx.update)(grads, state, params, value=1.0)
  # Jitted with traced hyperparameters against eager: rounding differs.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5),
               want, got)
  with pytest.raises(ValueError, match="window must be an int"):
    ma.scale_by_meta_attention_lr(1e-2, window=2.5)


def test_the_factory_holds_the_level_until_adapt_start_fraction():
  params = {"x": jnp.full((8,), 3.0)}
  make = lambda **kw: optim.make(config_lib.optim_section(
      "meta_attention_adamw", learning_rate=0.1, **kw), total_steps=100).tx
  levels = {}
  for frac in (0.0, 0.2):
    tx = make(adapt_start_fraction=frac)
    state, p = tx.init(params), params
    update = jax.jit(tx.update)
    for i in range(30):
      u, state = update({"x": p["x"]}, state, p, value=jnp.float32(1.0))
      p = optax.apply_updates(p, u)
      if i == 19:
        levels[frac, 20] = float(ma.find_state(state).level)
    levels[frac, 30] = float(ma.find_state(state).level)
  # Held at 0 for the first 20 of 100 steps, then learning; from the start
  # without it.
  assert levels[0.2, 20] == 0.0 and levels[0.2, 30] != 0.0
  assert levels[0.0, 20] != 0.0
  with pytest.raises(ValueError, match=r"adapt_start_fraction must be in "
                     r"\[0, adapt_fraction=0.4\], got 0.5"):
    make(adapt_start_fraction=0.5)


def test_max_level_step_bounds_each_step_of_the_level():
  # Gradient descent at a too-small rate on 0.5 |x|^2: the gradient barely
  # changes, so it agrees with the trace (cosine near -1) and a level of
  # level_rate 3 rises by 3 in one step unbounded, by max_level_step
  # bounded.
  params = {"x": jnp.linspace(1.0, 2.0, 8)}
  steps, final = {}, {}
  for bound in (None, 0.1):
    seen = _levels(1e-4, params, 1.0, 5, max_level_step=bound)
    steps[bound] = np.diff(seen)[1:]  # the first update has no trace yet
    final[bound] = seen[-1]
  np.testing.assert_allclose(steps[0.1], 0.1, rtol=1e-5)
  assert final[0.1] == pytest.approx(0.4, rel=1e-5)
  # Unbounded: 3 (level_rate times a cosine near -1), then the bound log 100.
  assert steps[None][0] > 2.9
  assert final[None] == pytest.approx(np.log(100.0), rel=1e-5)
  with pytest.raises(ValueError, match="max_level_step must be > 0, got 0"):
    ma.scale_by_meta_attention_lr(0.1, max_level_step=0.0)
  # Through the factory (a config key).
  assert abs(_factory_level(params, max_level_step=0.1)) <= 0.2 + 1e-6


def _levels(lr, params, hessian, steps, **options) -> list[float]:
  """The level before and after each of `steps` steps of gradient descent
  on 0.5 sum hessian x^2 (`params` {"x": x}) at base `lr`, level_rate 3,
  bounds 100x, with `options`."""
  tx = ma.scale_by_meta_attention_lr(lr, level_rate=3.0,
                                     max_multiplier=100.0, **options)
  state, p, seen = tx.init(params), params, [0.0]
  for _ in range(steps):
    u, state = tx.update({"x": hessian * p["x"]}, state, p)
    p = optax.apply_updates(p, u)
    seen.append(float(state.level))
  return seen


def _factory_level(params, **options) -> float:
  """The level after 3 steps of the factory's meta_attention_adamw at
  1e-4 and level_rate 3 with `options` (config keys), gradient = params."""
  tx = optim.make(config_lib.optim_section(
      "meta_attention_adamw", learning_rate=1e-4, level_rate=3.0,
      **options), total_steps=10).tx
  state = tx.init(params)
  for _ in range(3):
    _, state = tx.update(params, state, params)
  return float(ma.find_state(state).level)


def test_max_level_rise_bounds_rises_but_not_falls():
  # Gradient descent on 0.5 sum h x^2, h in [1, 4] (stability limit 0.5):
  # at 1e-4 the gradient agrees with the trace and the level rises, by
  # max_level_rise a step; at 4.0 the gradient turns against the trace and
  # the level falls by level_rate times a cosine near 1, unbounded.
  h = jnp.linspace(1.0, 4.0, 8)
  params = {"x": jnp.ones(8)}
  # The first update has no trace yet.
  level_steps = lambda lr, **options: np.diff(
      _levels(lr, params, h, 4, **options))[1:]

  np.testing.assert_allclose(level_steps(1e-4, max_level_rise=0.1), 0.1,
                             rtol=1e-5)
  falls = level_steps(4.0, max_level_rise=0.1)
  assert falls[0] < -2.0
  np.testing.assert_allclose(falls, level_steps(4.0), rtol=1e-6)
  with pytest.raises(ValueError, match="max_level_rise must be > 0, got -1"):
    ma.scale_by_meta_attention_lr(0.1, max_level_rise=-1.0)
  assert _factory_level(params, max_level_rise=0.1) <= 0.2 + 1e-6
