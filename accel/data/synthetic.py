"""Seeded Gaussian-cluster classification with imbalance, noise and hard cases.

The knobs are the ones batch selection is judged on:
  imbalance     ratio of the largest to the smallest class in the clean
                training labels (1 = balanced, 100 = 1:100); class sizes
                fall off geometrically between the two. Label noise then
                moves a share of every class to the others.
  label_noise   share of training labels replaced by a different, uniformly
                drawn class; `noisy` marks them.
  separation    distance between class means in units of the noise scale
                (smaller = harder overall).
  hard_fraction share of examples pulled halfway towards a different class's
                mean, so they sit near a decision boundary.
  image_size    0: vectors of `dim`; k > 0: k x k x 1 images (dim = k * k)
                whose class means are smooth random fields (white noise
                blurred over the image torus), so that a convolution's
                local filters fit them (meta-training's CNN task).
The test split is balanced and clean, so per-class accuracy is meaningful.
"""

import numpy as np

from accel.data import label_noise as label_noise_lib
from accel.data import source
from accel.errors import ConfigError


def _class_sizes(total: int, num_classes: int, imbalance: float) -> np.ndarray:
  decay = imbalance ** (-np.arange(num_classes) / max(num_classes - 1, 1))
  sizes = np.maximum(1, np.round(total * decay / decay.sum())).astype(int)
  return sizes


def _smooth_fields(rng, num_classes: int, size: int) -> np.ndarray:
  """[C, size * size] white noise blurred by a Gaussian of width size / 8
  on the torus (in Fourier space)."""
  freq = np.fft.fftfreq(size)
  width = size / 8
  gain = np.exp(-2 * (np.pi * width) ** 2
                * (freq[:, None] ** 2 + freq[None, :] ** 2))
  noise = rng.normal(size=(num_classes, size, size))
  fields = np.fft.ifft2(np.fft.fft2(noise) * gain).real
  return fields.reshape(num_classes, -1)


def _draw(rng, means_CxD, labels_N, separation, hard_fraction):
  num_classes, dim = means_CxD.shape
  x_NxD = rng.normal(size=(len(labels_N), dim))
  centre_NxD = means_CxD[labels_N] * separation
  hard_N = rng.random(len(labels_N)) < hard_fraction
  other_N = (labels_N + rng.integers(1, num_classes, len(labels_N))) % num_classes
  pull_NxD = 0.5 * (means_CxD[other_N] * separation - centre_NxD)
  centre_NxD = centre_NxD + hard_N[:, None] * pull_NxD
  return (centre_NxD + x_NxD).astype(np.float32), hard_N


@source.SOURCES.register("synthetic")
def make_synthetic(num_train: int = 8192, num_test: int = 2048,
                   num_classes: int = 10, dim: int = 32,
                   imbalance: float = 1.0, label_noise: float = 0.0,
                   separation: float = 3.0, hard_fraction: float = 0.0,
                   image_size: int = 0,
                   data_seed: int = 0) -> source.ArraySource:
  """Builds the data set; every knob is described in the module docstring."""
  if imbalance < 1.0:
    raise ConfigError(f"imbalance is largest/smallest class, >= 1; got "
                      f"{imbalance}.")
  if not 0.0 <= label_noise < 1.0:
    raise ConfigError(f"label_noise must be in [0, 1), got {label_noise}.")
  if num_classes < 2:
    raise ConfigError(f"num_classes must be >= 2, got {num_classes}.")
  if image_size < 0 or (image_size and dim != image_size ** 2):
    raise ConfigError(f"image_size must be 0 (vectors) or k with dim = k * "
                      f"k; got image_size {image_size} and dim {dim}.")
  rng = np.random.default_rng(data_seed)
  means_CxD = (_smooth_fields(rng, num_classes, image_size) if image_size
               else rng.normal(size=(num_classes, dim)))
  means_CxD /= np.linalg.norm(means_CxD, axis=1, keepdims=True)

  sizes = _class_sizes(num_train, num_classes, imbalance)
  y_train = np.repeat(np.arange(num_classes), sizes)
  y_train = y_train[rng.permutation(len(y_train))]
  x_train, hard_train = _draw(rng, means_CxD, y_train, separation,
                              hard_fraction)
  y_observed, noisy = label_noise_lib.flip(y_train, label_noise,
                                           num_classes, rng)

  y_test = np.arange(num_test) % num_classes
  x_test, hard_test = _draw(rng, means_CxD, y_test, separation, hard_fraction)

  train = {"inputs": x_train, "label": y_observed,
           "noisy": noisy, "hard": hard_train,
           "clean_label": y_train.astype(np.int32)}
  test = {"inputs": x_test, "label": y_test.astype(np.int32),
          "noisy": np.zeros(num_test, bool), "hard": hard_test,
          "clean_label": y_test.astype(np.int32)}
  shape = (image_size, image_size, 1) if image_size else (dim,)
  for split in (train, test):
    split["inputs"] = split["inputs"].reshape(-1, *shape)
  spec = source.DataSpec(
      name="synthetic", task="classification", input_shape=shape,
      input_dtype="float32", num_classes=num_classes,
      num_train=len(y_train), num_test=num_test)
  return source.ArraySource(spec, train, test)
