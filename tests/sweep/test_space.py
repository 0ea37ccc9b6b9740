"""Sweep spaces: setting config keys, swapping sections, and the errors."""

import os

import pytest

from accel import sweep
from accel.errors import ConfigError
from accel.sweep import space as space_lib
from accel.train import config as config_lib

SWEEPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "configs", "sweeps")


def _config():
  c = config_lib.base_config()
  c.optim = config_lib.optim_section("adamw", learning_rate=1e-3,
                                     weight_decay=0.1, warmup_steps=7)
  return c


def test_apply_sets_dotted_keys_on_a_copy():
  base = _config()
  out = space_lib.apply(base, {"optim.learning_rate": 3e-2, "batch_size": 64,
                               "model.channels": [8, 8]})
  assert out.optim.learning_rate == 3e-2 and out.batch_size == 64
  assert out.model.channels == (8, 8)
  assert base.optim.learning_rate == 1e-3 and base.batch_size == 128


def test_a_name_key_swaps_the_section_keeping_shared_options():
  out = space_lib.apply(_config(), {"optim.name": "nadamw",
                                    "optim.learning_rate": 5e-3})
  assert out.optim.name == "nadamw"
  assert out.optim.learning_rate == 5e-3  # set after the swap
  assert out.optim.warmup_steps == 7 and out.optim.weight_decay == 0.1
  assert set(out.optim.keys()) == set(config_lib.optim_section("nadamw"))


def test_unknown_key_is_named_with_a_suggestion():
  with pytest.raises(ConfigError, match=r"'optim.learning_rat'.*Did you "
                     r"mean 'learning_rate'"):
    space_lib.apply(_config(), {"optim.learning_rat": 1e-3})
  with pytest.raises(ConfigError, match="no section 'optimizer'"):
    space_lib.apply(_config(), {"optimizer.learning_rate": 1e-3})


def test_a_value_of_the_wrong_type_is_named():
  with pytest.raises(ConfigError, match=r"'batch_size'.*'big'"):
    space_lib.apply(_config(), {"batch_size": "big"})


@pytest.mark.parametrize("kwargs, message", [
    (dict(metric="f1"), "metric must be one of"),
    (dict(direction="up"), "direction must be one of"),
    (dict(sampler="bayes"), "sampler must be one of"),
    (dict(pruner="asha"), "pruner must be one of"),
    (dict(trials=0), "trials must be >= 1"),
    (dict(sampler="grid"), "grid sampler needs a `grid`"),
])
def test_a_bad_sweep_is_refused(kwargs, message):
  with pytest.raises(ConfigError, match=message):
    sweep.Sweep(space={"optim.learning_rate": sweep.LogUniform(1e-4, 1e-2)},
                **kwargs)


def test_bad_distributions_are_refused():
  with pytest.raises(ConfigError, match="0 < low < high"):
    sweep.LogUniform(0.0, 1.0)
  with pytest.raises(ConfigError, match="not a distribution"):
    sweep.Sweep(space={"optim.learning_rate": (1e-4, 1e-2)})


def test_the_shipped_sweep_files_load(tmp_path):
  for name in ("debug.py", "mnist1d_cnn.py", "mnist1d_cnn.py:tpe"):
    found = sweep.load(os.path.join(SWEEPS, name))
    assert found.space and found.pruner == "successive_halving"
  grid = sweep.load(os.path.join(SWEEPS, "mnist1d_cnn.py:grid"))
  assert (grid.sampler, grid.pruner, grid.trials) == ("grid", "none", 18)
  with pytest.raises(Exception, match="does not exist"):
    sweep.load(str(tmp_path / "none.py"))
  with pytest.raises(ConfigError, match=r"Unknown config variant 'grd'.*"
                     r"Did you mean 'grid'"):
    sweep.load(os.path.join(SWEEPS, "mnist1d_cnn.py:grd"))
  bad = tmp_path / "bad.py"
  bad.write_text("X = 1\n")
  with pytest.raises(ConfigError, match="defines no get_sweep"):
    sweep.load(str(bad))
