"""Seeded CIFAR-sized texture classification (32x32 RGB, no download).

A stand-in for CIFAR-10 where no data set can be fetched: it has CIFAR's
shapes (50,000 train and 10,000 test images of 32x32x3, 10 classes) and
needs a convolutional network's inductive bias, but it is not natural images,
so accuracies are not comparable with CIFAR's.

Each class owns `gratings` random plane waves on the 32x32 torus (integer
spatial frequencies up to `max_frequency`, one amplitude per colour channel).
An image is its class's waves at a random translation (a phase shift), each
wave with its own phase jitter and amplitude scale, plus a weaker copy of
another class's waves (a distractor) and Gaussian pixel noise. Translation
moves every wave, so a model must find the waves where they are: global
average pooling over learned filters works, a per-pixel template does not.
`noise` and `distractor` set the difficulty.
"""

import functools

import numpy as np

from accel.data import source
from accel.errors import ConfigError

_SIZE = 32


def _waves(rng, num_classes, gratings, max_frequency):
  """Frequencies [C, G, 2] (never both zero) and RGB amplitudes [C, G, 3]."""
  freq = rng.integers(-max_frequency, max_frequency + 1,
                      (num_classes, gratings, 2))
  zero = (freq == 0).all(-1)
  freq[zero, 0] = 1
  amp = rng.normal(size=(num_classes, gratings, 3))
  amp /= np.sqrt((amp ** 2).sum(axis=(1, 2), keepdims=True) / 2)
  return freq, amp


def _render(rng, freq_CxGx2, amp_CxGx3, labels_N, noise, distractor,
            jitter, chunk=2048):
  num_classes, gratings, _ = freq_CxGx2.shape
  angle_S = 2 * np.pi / _SIZE * np.arange(_SIZE)
  out = np.empty((len(labels_N), _SIZE, _SIZE, 3), np.float32)
  for lo in range(0, len(labels_N), chunk):
    y_n = labels_N[lo:lo + chunk]
    n = len(y_n)
    other_n = (y_n + rng.integers(1, num_classes, n)) % num_classes
    img = noise * rng.standard_normal((n, _SIZE, _SIZE, 3), np.float32)
    for cls_n, weight in ((y_n, 1.0), (other_n, distractor)):
      if weight == 0.0:
        continue
      shift_nx2 = rng.integers(0, _SIZE, (n, 2))
      f_nxGx2 = freq_CxGx2[cls_n]
      phase_nxG = (2 * np.pi / _SIZE * (f_nxGx2 * shift_nx2[:, None]).sum(-1)
                   + jitter * rng.normal(size=(n, gratings)))
      scale_nxG = weight * rng.uniform(0.6, 1.4, (n, gratings))
      for g in range(gratings):
        # cos(a + b) = cos a cos b - sin a sin b, with a along rows (and the
        # phase) and b along columns: two [n, 32] tables, not [n, 32, 32].
        a_nxS = (f_nxGx2[:, g, 0, None] * angle_S
                 + phase_nxG[:, g, None])
        b_nxS = f_nxGx2[:, g, 1, None] * angle_S
        ca, sa, cb, sb = (np.cos(a_nxS).astype(np.float32),
                          np.sin(a_nxS).astype(np.float32),
                          np.cos(b_nxS).astype(np.float32),
                          np.sin(b_nxS).astype(np.float32))
        wave_nxSxS = ca[:, :, None] * cb[:, None] - sa[:, :, None] * sb[:, None]
        colour_nx3 = (scale_nxG[:, g, None]
                      * amp_CxGx3[cls_n, g]).astype(np.float32)
        img += wave_nxSxS[..., None] * colour_nx3[:, None, None]
    out[lo:lo + n] = img
  return out


@source.SOURCES.register("textures")
def make_textures(num_train: int = 50000, num_test: int = 10000,
                  num_classes: int = 10, gratings: int = 4,
                  max_frequency: int = 4, noise: float = 2.5,
                  distractor: float = 0.7, jitter: float = 0.3,
                  data_seed: int = 0) -> source.ArraySource:
  """Builds the data set; the knobs are described in the module docstring."""
  if num_classes < 2:
    raise ConfigError(f"num_classes must be >= 2, got {num_classes}.")
  if gratings < 1 or max_frequency < 1:
    raise ConfigError(f"gratings and max_frequency must be >= 1, got "
                      f"{gratings} and {max_frequency}.")
  if noise < 0 or not 0.0 <= distractor < 1.0:
    raise ConfigError(f"noise must be >= 0 and distractor in [0, 1), got "
                      f"{noise} and {distractor}.")
  train, test = _generate(num_train, num_test, num_classes, gratings,
                          max_frequency, noise, distractor, jitter, data_seed)
  spec = source.DataSpec(
      name="textures", task="classification",
      input_shape=(_SIZE, _SIZE, 3), input_dtype="float32",
      num_classes=num_classes, num_train=num_train, num_test=num_test)
  return source.ArraySource(spec, train, test)


@functools.lru_cache(maxsize=2)
def _generate(num_train, num_test, num_classes, gratings, max_frequency,
              noise, distractor, jitter, data_seed):
  """Both splits, read-only; kept because drawing CIFAR's 60,000 images takes
  seconds and a benchmark builds the source once per trial."""
  rng = np.random.default_rng(data_seed)
  freq, amp = _waves(rng, num_classes, gratings, max_frequency)

  def split(n):
    labels = (np.arange(n) % num_classes)[rng.permutation(n)].astype(np.int32)
    images = _render(rng, freq, amp, labels, noise, distractor, jitter)
    return source.read_only({"inputs": images, "label": labels})

  return split(num_train), split(num_test)
