"""Adaptive depth: exits at threshold 1.0 reproduce the full model, the
first confident exit answers, and training counts every exit's loss."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from accel import data
from accel import models
from accel import train
from accel.models import early_exit as exit_lib
from accel.train import step as step_lib

_MODELS = {
    "resnet": ({"name": "textures", "num_train": 64, "num_test": 16},
               {"name": "resnet", "stage_channels": (8, 16),
                "blocks_per_stage": 2}, 4),
    "vit": ({"name": "digits"},
            {"name": "transformer", "width": 32, "num_layers": 3,
             "num_heads": 2, "mlp_dim": 64, "patch_size": 4}, 3),
}


def _setup(case, **options):
  data_cfg, model_cfg, blocks = _MODELS[case]
  source = data.make_source(data_cfg)
  model = models.make({**model_cfg, "early_exit": True, **options},
                      source.spec)
  plain = models.make(model_cfg, source.spec)
  params = jax.jit(model.init)(jax.random.PRNGKey(0),
                               models.dummy_inputs(source.spec))["params"]
  return source, model, plain, params, blocks


@pytest.mark.parametrize("case", sorted(_MODELS))
def test_threshold_one_is_the_full_model(case):
  source, model, plain, params, blocks = _setup(case)
  x = source.fetch("train", np.arange(16))["inputs"]
  # The exit heads are extra parameters; without them it is the plain model.
  trunk = {k: v for k, v in params.items() if not k.startswith("exit")}
  assert set(params) - set(trunk) == {f"exit{i}" for i in range(blocks - 1)}
  want = plain.apply({"params": trunk}, x)
  got, state = model.apply({"params": params}, x,
                           mutable=[exit_lib.COLLECTION])
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(state[exit_lib.COLLECTION]["blocks"][0],
                                float(blocks))


@pytest.mark.parametrize("case", sorted(_MODELS))
def test_threshold_zero_leaves_at_the_first_exit(case):
  source, model, _, params, _ = _setup(case, exit_threshold=0.0)
  x = source.fetch("train", np.arange(16))["inputs"]
  got, state = model.apply({"params": params}, x,
                           mutable=[exit_lib.COLLECTION])
  np.testing.assert_array_equal(state[exit_lib.COLLECTION]["blocks"][0], 1.0)
  _, sown = model.apply({"params": params}, x, train=True,
                        mutable=[exit_lib.COLLECTION])
  np.testing.assert_array_equal(got, sown[exit_lib.COLLECTION]["logits"][0][0])


def test_choose_takes_the_first_exit_above_the_threshold():
  rng = np.random.default_rng(0)
  exits = [jnp.asarray(rng.normal(size=(32, 5)) * 3) for _ in range(3)]
  final = jnp.asarray(rng.normal(size=(32, 5)))
  for threshold in (0.3, 0.6, 0.9):
    logits, blocks = exit_lib.choose(exits, final, threshold)
    for b in range(32):
      conf = [float(jax.nn.softmax(e[b]).max()) for e in exits]
      first = next((i for i, c in enumerate(conf) if c > threshold), 3)
      assert blocks[b] == first + 1
      np.testing.assert_array_equal(logits[b], (exits + [final])[first][b])


@pytest.mark.parametrize("case", sorted(_MODELS))
def test_training_loss_is_the_mean_over_all_exits(case):
  source, model, _, params, blocks = _setup(case)
  batch = source.fetch("train", np.arange(16))
  rng = jax.random.PRNGKey(0)
  loss, _ = step_lib.loss_and_stats(params, model, batch, rng, True)
  final, sown = model.apply({"params": params}, batch["inputs"], train=True,
                            mutable=[exit_lib.COLLECTION])
  all_logits = [*sown[exit_lib.COLLECTION]["logits"][0], final]
  assert len(all_logits) == blocks
  want = np.mean([optax.softmax_cross_entropy_with_integer_labels(
      l, batch["label"]).mean() for l in all_logits])
  np.testing.assert_allclose(loss, want, rtol=1e-5)


@pytest.mark.slow
def test_a_run_reports_the_blocks_examples_used(tmp_path, tiny_config):
  from accel.train import config as config_lib  # pylint: disable=g-import-not-at-top
  c = tiny_config()
  c.data = config_lib.data_section("digits")
  c.model = config_lib.model_section(
      "transformer", width=16, num_layers=2, num_heads=2, mlp_dim=32,
      early_exit=True, exit_threshold=0.5)
  out = train.run(c, str(tmp_path / "w"))
  assert 1.0 <= out["mean_blocks"] <= 2.0
