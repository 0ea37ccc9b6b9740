"""Shared pieces of the selection tests: a tiny data set, model and batch,
and the noisy training config."""

import jax
import numpy as np
import pytest

from accel import data
from accel import models
from accel.train import config as config_lib


@pytest.fixture(scope="module")
def tiny():
  source = data.make_source({"name": "synthetic", "num_train": 256,
                             "num_test": 64, "dim": 8, "label_noise": 0.2})
  model = models.make({"name": "mlp", "hidden": (16,)}, source.spec)
  params = jax.jit(lambda k: model.init(
      k, models.dummy_inputs(source.spec), train=False))(
          jax.random.PRNGKey(0))["params"]
  batch = source.fetch("train", np.arange(32))
  batch["example_id"] = np.arange(32, dtype=np.int32)
  return source, model, params, batch


@pytest.fixture
def noisy_config():
  """A function: the noisy synthetic training config with the given
  selection options."""
  return _noisy_config


def _noisy_config(**selection):
  c = config_lib.base_config()
  c.data = config_lib.data_section("synthetic", num_train=1024, num_test=256,
                                   dim=8, label_noise=0.3, imbalance=5.0)
  c.model = config_lib.model_section("mlp", hidden=(32,))
  c.optim = config_lib.optim_section("adamw", learning_rate=1e-2)
  c.total_steps, c.batch_size, c.log_every = 60, 32, 20
  c.eval_every = c.checkpoint_every = 0
  c.progress_bar = False
  # The controller off unless asked for: these tests check what selection
  # picks, step by step.
  c.selection = config_lib.selection_section(
      **{"controller": "off", **selection})
  return c
