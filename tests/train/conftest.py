"""The tiny training config the train tests share."""

import pytest

from accel.train import config as config_lib


def _tiny_config(**overrides):
  """A synthetic-data MLP run of 8 steps, with evaluation and checkpoints
  every 4 steps; `overrides` set top-level keys."""
  c = config_lib.base_config()
  c.data = config_lib.data_section("synthetic", num_train=256, num_test=64,
                                   dim=8)
  c.model = config_lib.model_section("mlp", hidden=(16,), dropout=0.1)
  c.optim = config_lib.optim_section("adamw", learning_rate=1e-2,
                                     schedule="cosine", warmup_steps=2)
  c.total_steps, c.batch_size, c.eval_batch_size = 8, 16, 32
  c.log_every, c.eval_every, c.checkpoint_every = 2, 4, 4
  c.progress_bar = False
  c.update(overrides)
  return c


@pytest.fixture(scope="session")
def tiny_config():
  """The function above: `tiny_config(total_steps=4)`."""
  return _tiny_config
