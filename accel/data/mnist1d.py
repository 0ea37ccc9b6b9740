"""MNIST-1D (Greydanus 2020), generated locally by the `mnist1d` package.

Each example is a 40-sample 1-D signal, one of 10 digit templates that was
padded, shifted, sheared, scaled, blurred and corrupted with noise. No
download: the generator is seeded, so the same seed gives the same data.
"""

import functools

import numpy as np

from accel.data import source


@source.SOURCES.register("mnist1d")
def make_mnist1d(num_samples: int = 5000, train_split: float = 0.8,
                 data_seed: int = 42) -> source.ArraySource:
  """The MNIST-1D generator's defaults give 4000 train / 1000 test examples.

  Args:
    num_samples: examples generated in all, split into train and test.
    train_split: share of them that is training data.
    data_seed: seed of the generator (42 is the package's published default).
  """
  d = _generate(num_samples, train_split, data_seed)
  # Conv layers read the signal as [length, channels=1]; fresh copies, so no
  # caller can change the cached arrays.
  split = lambda x, y: {"inputs": x.astype(np.float32)[..., None],
                        "label": y.astype(np.int32)}
  train, test = split(d["x"], d["y"]), split(d["x_test"], d["y_test"])
  spec = source.DataSpec(
      name="mnist1d", task="classification", input_shape=(40, 1),
      input_dtype="float32", num_classes=10, num_train=len(train["label"]),
      num_test=len(test["label"]))
  return source.ArraySource(spec, train, test)


@functools.lru_cache(maxsize=4)
def _generate(num_samples: int, train_split: float, data_seed: int) -> dict:
  """The generator's output; it takes about a second, so it is kept (a
  benchmark grid or a meta-training task family builds the set many times)."""
  # Imported here: the package's import (scipy with it) took 0.6 s of
  # every process's start.
  import mnist1d.data  # pylint: disable=g-import-not-at-top
  args = mnist1d.data.get_dataset_args()
  args.num_samples, args.train_split, args.seed = (num_samples, train_split,
                                                   data_seed)
  return mnist1d.data.make_dataset(args)
