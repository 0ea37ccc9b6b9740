"""Every config file loads, validates, and its debug variant trains."""

import glob
import importlib.util
import os

import pytest
import tensorflow_datasets as tfds

from accel import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


def load(path, arg=""):
  spec = importlib.util.spec_from_file_location("cfg", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  assert "launch/train.py --config configs/" in module.__doc__
  return module.get_config(arg)


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_loads_and_validates(path):
  c = load(path)
  train.validate(c)
  assert c.total_steps >= 1000  # the real job, not the debug one


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_debug_variant_trains(path, tmp_path):
  c = load(path, "debug")
  assert c.total_steps <= 20
  c.total_steps, c.eval_max_examples, c.progress_bar = 4, 32, False
  c.batch_size = min(c.batch_size, 16)
  if c.data.name == "mnist1d":
    c.data.num_samples = 500  # the generator is the slow part here
  if c.data.name == "tfds":
    with tfds.testing.mock_data(num_examples=32):
      result = train.run(c, str(tmp_path))
  else:
    result = train.run(c, str(tmp_path))
  assert result["step"] == 4


def test_unknown_variant_value_is_named():
  path = os.path.join(REPO, "configs", "tfds_image.py")
  with pytest.raises(ValueError, match="model='vgg'"):
    load(path, "model=vgg")


# configs/sweeps/ holds sweep files (get_sweep), tested in tests/sweep/.
ALL_CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py"))
                     + [p for p in glob.glob(os.path.join(REPO, "configs", "*",
                                                          "*.py"))
                        if os.sep + "sweeps" + os.sep not in p])


@pytest.mark.parametrize("path", ALL_CONFIGS,
                         ids=lambda p: os.path.relpath(p, REPO))
def test_an_unknown_variant_fails_naming_the_known_ones(path):
  """A typo after the colon never runs the default job."""
  from accel.train import config as config_lib  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match=r"Unknown config variant 'nonsense' "
                     r"\(after the colon in --config\)\.( Did you mean "
                     r"'\w+'\?)? This config knows: "):
    config_lib.load_file(f"{path}:nonsense")
  with pytest.raises(ValueError, match="Unknown config variant 'nonsense=1'"):
    config_lib.load_file(f"{path}:nonsense=1")


def test_a_misspelt_variant_gets_a_did_you_mean():
  from accel.train import config as config_lib  # pylint: disable=g-import-not-at-top
  path = os.path.join(REPO, "configs", "mnist1d_cnn.py")
  with pytest.raises(ValueError, match=r"'debg'.*Did you mean 'debug'\? "
                     r"This config knows: attention, debug\."):
    config_lib.load_file(f"{path}:debg")
  path = os.path.join(REPO, "configs", "synthetic_mlp.py")
  with pytest.raises(ValueError, match=r"'nosie=0.2'.*Did you mean 'noise'"
                     r".*knows: debug, hard=\.\.\., imbalance=\.\.\., "
                     r"noise=\.\.\."):
    config_lib.load_file(f"{path}:nosie=0.2")
  c = config_lib.load_file(f"{path}:noise=0.2,debug")
  assert c.data.label_noise == 0.2 and c.total_steps == 20
