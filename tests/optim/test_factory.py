"""Optimizer factory: every optimizer trains; schedules, masks and errors."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from accel import data
from accel import models
from accel import optim
from accel import train
from accel.optim import factory
from accel.train import build
from accel.train import config as config_lib
from accel.train import step as train_step_lib

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")

# A sensible learning rate per optimizer for the tiny problem below.
LEARNING_RATES = {
    "sgd": 0.1, "adam": 3e-3, "adamw": 3e-3, "nadamw": 3e-3, "rmsprop": 1e-3,
    "adagrad": 0.05, "lamb": 3e-3, "lars": 1.0, "lion": 3e-4,
    "schedule_free_adamw": 3e-3, "prodigy": 1.0, "mechanic": 3e-3,
    "gradient_transformer": 3e-3, "meta_attention_adamw": 3e-3,
    "dog": 1.0, "muon": 3e-3, "orthogonal_hybrid": 3e-3,
    "meta_attention_prodigy": 1.0,
}
# Options an optimizer cannot do without on the problem below.
OPTIONS = {"orthogonal_hybrid": {"rows_per_step": 64},
           "gradient_transformer": {"rows_per_step": 64}}


def test_every_listed_optimizer_is_registered():
  assert set(LEARNING_RATES) <= set(optim.OPTIMIZERS.names)


@pytest.fixture(scope="module")
def problem():
  source = data.make_source({"name": "synthetic", "num_train": 512,
                             "num_test": 128, "dim": 16, "separation": 4.0})
  model = models.make({"name": "mlp", "hidden": (32,)}, source.spec)
  it = source.train_iterator(64, seed=0)
  batches = [next(it) for _ in range(30)]
  return source, model, batches


@pytest.mark.parametrize("name", sorted(LEARNING_RATES))
def test_optimizer_trains_without_nan(problem, name):
  source, model, batches = problem
  opt = optim.make(config_lib.optim_section(
      name, learning_rate=LEARNING_RATES[name], weight_decay=1e-4,
      warmup_steps=3, schedule="cosine", grad_clip_norm=5.0,
      **OPTIONS.get(name, {})), total_steps=len(batches))
  state = train.init_state(model, opt, source.spec, seed=0)
  step = jax.jit(functools.partial(train.train_step, model=model,
                                   optimizer=opt))

  def full_loss(st):  # every batch, eval mode: no minibatch noise
    params = opt.eval_params(st.opt_state, st.params)
    return np.mean([float(train_step_lib.loss_and_stats(
        params, model, b, st.rng, False)[0]) for b in batches])
  before = full_loss(state)
  losses = []
  for batch in batches:
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert np.isfinite(losses).all()
  assert all(np.isfinite(p).all() for p in jax.tree.leaves(state.params))
  assert full_loss(state) < before
  assert int(state.step) == len(batches)


def test_warmup_then_cosine_schedule():
  s = optim.make_schedule(1.0, 110, "cosine", warmup_steps=10,
                          end_lr_factor=0.1)
  assert float(s(0)) == pytest.approx(0.1)
  assert float(s(5)) == pytest.approx(0.55)
  assert float(s(10)) == pytest.approx(1.0)
  assert float(s(60)) == pytest.approx(0.55, abs=1e-6)
  assert float(s(110)) == pytest.approx(0.1)
  lin = optim.make_schedule(2.0, 100, "linear")
  assert float(lin(50)) == pytest.approx(1.0)
  assert float(optim.make_schedule(2.0, 100, "constant")(77)) == 2.0


def test_no_weight_decay_on_biases_and_norms():
  params = {"dense": {"kernel": jnp.ones((3, 4)), "bias": jnp.ones((4,))},
            "norm": {"scale": jnp.ones((4,))}}
  grads = jax.tree.map(jnp.zeros_like, params)
  opt = optim.make(config_lib.optim_section(
      "adamw", learning_rate=0.1, weight_decay=0.5), total_steps=10)
  updates, _ = opt.tx.update(grads, opt.tx.init(params), params)
  np.testing.assert_allclose(updates["dense"]["kernel"], -0.05)  # -lr*wd*p
  np.testing.assert_allclose(updates["dense"]["bias"], 0.0)
  np.testing.assert_allclose(updates["norm"]["scale"], 0.0)
  everything = optim.make(config_lib.optim_section(
      "adamw", learning_rate=0.1, weight_decay=0.5, decay_mask="all"), 10)
  updates, _ = everything.tx.update(grads, everything.tx.init(params), params)
  np.testing.assert_allclose(updates["dense"]["bias"], -0.05)


def test_gradient_clipping_bounds_the_update():
  params = {"w": jnp.zeros((4,))}
  grads = {"w": jnp.full((4,), 100.0)}
  opt = optim.make(config_lib.optim_section(
      "sgd", learning_rate=1.0, momentum=0.0, grad_clip_norm=1.0), 10)
  updates, _ = opt.tx.update(grads, opt.tx.init(params), params)
  assert float(optax.tree.norm(updates)) == pytest.approx(1.0, rel=1e-5)


def test_matches_plain_optax_adamw():
  params = {"w": jnp.arange(6.0).reshape(2, 3)}
  grads = {"w": jnp.linspace(-1, 1, 6).reshape(2, 3)}
  ours = optim.make(config_lib.optim_section(
      "adamw", learning_rate=0.01, weight_decay=0.1), 10).tx
  ref = optax.adamw(0.01, weight_decay=0.1)
  s1, s2 = ours.init(params), ref.init(params)
  for _ in range(3):
    u1, s1 = ours.update(grads, s1, params, value=jnp.float32(1.0))
    u2, s2 = ref.update(grads, s2, params)
    np.testing.assert_allclose(u1["w"], u2["w"], rtol=1e-6)


def test_schedule_free_evaluates_at_its_averaged_point():
  params = {"w": jnp.ones((3,))}
  opt = optim.make(config_lib.optim_section("schedule_free_adamw",
                                            learning_rate=0.1), 10)
  state = opt.tx.init(params)
  for _ in range(3):
    updates, state = opt.tx.update({"w": jnp.ones((3,))}, state, params)
    params = optax.apply_updates(params, updates)
  evaluated = opt.eval_params(state, params)
  assert not np.allclose(evaluated["w"], params["w"])
  adam = optim.make(config_lib.optim_section("adamw"), 10)
  assert adam.eval_params(adam.tx.init(params), params) is params


def test_optimizer_errors_name_the_bad_value():
  with pytest.raises(ValueError, match=r"Unknown optimizer 'adamw2'.*adamw"):
    optim.make({"name": "adamw2"}, 10)
  with pytest.raises(ValueError, match=r"Unknown option 'beta1'.*'b1'"):
    optim.make({"name": "adamw", "beta1": 0.9}, 10)
  with pytest.raises(ValueError, match="Unknown schedule 'cosin'"):
    optim.make({"name": "adamw", "schedule": "cosin"}, 10)
  with pytest.raises(ValueError, match="warmup_steps must be"):
    optim.make({"name": "adamw", "warmup_steps": 50}, 10)


@pytest.mark.parametrize("options,message", [
    ({"learning_rate": -1.0},
     r"config\.optim\.learning_rate must be > 0 \(or an optax schedule\), "
     r"got -1\.0"),
    ({"learning_rate": 0.0}, r"learning_rate must be > 0"),
    ({"learning_rate": "1e-3"},
     r"config\.optim\.learning_rate must be a number > 0 or an optax "
     r"schedule, got the string '1e-3'"),
    ({"weight_decay": -1e-4}, r"config\.optim\.weight_decay must be >= 0"),
    ({"grad_clip_norm": -1.0}, r"config\.optim\.grad_clip_norm must be >= 0"),
])
def test_bad_values_are_refused_when_the_optimizer_is_built(options,
                                                            message):
  """A negative learning rate trains uphill and a string one fails deep in
  update(): both are refused here, naming the key."""
  with pytest.raises(ValueError, match=message):
    optim.make({"name": "adamw", **options}, 10)


def test_meta_attention_adapt_fraction_is_a_share_of_the_run():
  params = {"w": jnp.ones((3, 2))}
  section = config_lib.optim_section(
      "meta_attention_adamw", learning_rate=1e-2, level_rate=1.0,
      hyper_lr=0.0, adapt_fraction=0.4)
  opt = optim.make(section, total_steps=10)
  state = opt.tx.init(params)
  step = jax.jit(opt.tx.update)
  levels = []
  for i in range(8):
    grads = {"w": jnp.full((3, 2), 1.0 + 0.1 * i)}
    _, state = step(grads, state, params, value=1.0)
    levels.append(float(optim.meta_attention.find_state(state).level))
  # Learns on steps 1-3 (step 0 has no trace), held from step 4 = 0.4 * 10.
  assert levels[0] == 0.0 and levels[1] != 0.0 and levels[3] != levels[2]
  assert levels[4:] == [levels[3]] * 4
  with pytest.raises(ValueError, match=r"adapt_fraction must be in \[0, 1\], "
                     "got 1.5"):
    optim.make(config_lib.optim_section("meta_attention_adamw",
                                        adapt_fraction=1.5), total_steps=10)


@pytest.mark.parametrize("name", ["orthogonal_hybrid", "gradient_transformer"])
def test_the_cost_rule_needs_rows_per_step(name):
  with pytest.raises(ValueError, match="rows_per_step.*got 0"):
    optim.make(config_lib.optim_section(name), total_steps=10)


def test_rows_per_step_comes_from_the_batch_unless_the_section_sets_it(
    monkeypatch):
  seen = []
  real = optim.orthogonal_hybrid
  def spy(lr, *, rows_per_step, **kw):
    seen.append(rows_per_step)
    return real(lr, rows_per_step=rows_per_step, **kw)
  monkeypatch.setattr(factory.orthogonal, "hybrid", spy)
  optim.make(config_lib.optim_section("orthogonal_hybrid"), total_steps=10,
             rows_per_step=96)
  optim.make(config_lib.optim_section("orthogonal_hybrid", rows_per_step=8),
             total_steps=10, rows_per_step=96)
  assert seen == [96, 8]
  lm = config_lib.load_file(os.path.join(CONFIGS, "lm_transformer.py:debug"))
  spec = data.make_source(lm.data).spec
  assert build.rows_per_step(lm.batch_size, spec) == (
      lm.batch_size * spec.input_shape[0])
  mlp = config_lib.load_file(os.path.join(CONFIGS, "mnist1d_mlp.py:debug"))
  assert build.rows_per_step(mlp.batch_size,
                             data.make_source(mlp.data).spec) == mlp.batch_size
