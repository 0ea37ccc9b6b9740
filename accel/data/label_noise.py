"""Corrupted labels on purpose: a share of the training labels replaced by
another class, drawn uniformly, with the corrupted ones marked (batches
carry `noisy`, so selection can report how many it picks)."""

import numpy as np

from accel.errors import ConfigError


def flip(labels_N: np.ndarray, share: float, num_classes: int,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """(observed labels int32, noisy bool): each label replaced with
  probability `share` by one of the other num_classes - 1 classes."""
  if not 0.0 <= share < 1.0:
    raise ConfigError(f"label_noise must be in [0, 1), got {share}.")
  noisy = rng.random(len(labels_N)) < share
  shift = rng.integers(1, num_classes, len(labels_N))
  observed = np.where(noisy, (labels_N + shift) % num_classes, labels_N)
  return observed.astype(np.int32), noisy
