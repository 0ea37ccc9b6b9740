"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download)."""

import numpy as np

from accel.data import label_noise as label_noise_lib
from accel.data import source
from accel.errors import ConfigError


@source.SOURCES.register("digits")
def make_digits(test_fraction: float = 0.2, split_seed: int = 0,
                label_noise: float = 0.0) -> source.ArraySource:
  """A seeded train/test split of the digits, pixels scaled to [0, 1].

  Args:
    test_fraction: share of the images held out for testing.
    split_seed: seed of the permutation that splits them (fixed, so that the
      test set does not move with the training seed).
    label_noise: share of the training labels replaced by another digit
      (accel.data.label_noise; batches then carry `noisy`). The test
      labels stay clean.
  """
  if not 0.0 < test_fraction < 1.0:
    raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}.")
  # Imported here: scikit-learn's import (scipy.stats with it) took 2.1 s
  # of every process's start, most of which never read the digits.
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  d = datasets.load_digits()
  x = (d.images / 16.0).astype(np.float32)[..., None]  # [N, 8, 8, 1]
  y = d.target.astype(np.int32)
  order = np.random.default_rng(split_seed).permutation(len(y))
  n_test = int(round(test_fraction * len(y)))
  test_idx, train_idx = order[:n_test], order[n_test:]
  train = {"inputs": x[train_idx], "label": y[train_idx]}
  test = {"inputs": x[test_idx], "label": y[test_idx]}
  if label_noise:
    rng = np.random.default_rng([split_seed, 0x401CE])
    train["label"], train["noisy"] = label_noise_lib.flip(
        train["label"], label_noise, 10, rng)
    test["noisy"] = np.zeros(len(test_idx), bool)
  spec = source.DataSpec(
      name="digits", task="classification", input_shape=(8, 8, 1),
      input_dtype="float32", num_classes=10, num_train=len(train_idx),
      num_test=len(test_idx))
  return source.ArraySource(spec, train, test)
