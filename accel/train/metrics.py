"""TensorBoard event files (tensorboardX) and host-side metric averaging."""

from __future__ import annotations

import collections
import os
import time

import numpy as np
from tensorboardX import SummaryWriter

from accel.errors import ConfigError


class MetricWriter:
  """Writes scalars to `workdir/tensorboard`; `tensorboard --logdir` reads it."""

  def __init__(self, workdir: str, enabled: bool = True,
               purge_step: int | None = None):
    """`purge_step`: TensorBoard drops the events an earlier process
    logged at this step and after (a resumed run logs them again), so no
    step shows twice."""
    self.logdir = os.path.join(workdir, "tensorboard")
    # tensorboardX names event files by the whole second: a resumed run
    # that opens its writer in the same second as the run before it would
    # overwrite that run's file. The nanosecond suffix keeps both, in order.
    self._writer = (SummaryWriter(self.logdir, purge_step=purge_step,
                                  filename_suffix=f".{time.time_ns()}")
                    if enabled else None)

  def scalars(self, step: int, values: dict[str, float]) -> None:
    if self._writer is None:
      return
    for name, value in values.items():
      self._writer.add_scalar(name, float(value), step)

  def histograms(self, step: int, values: dict[str, np.ndarray]) -> None:
    if self._writer is not None:
      for name, value in values.items():
        self._writer.add_histogram(name, np.asarray(value, np.float32), step)

  def image(self, step: int, name: str, image_HxWxC: np.ndarray) -> None:
    if self._writer is not None:
      self._writer.add_image(name, image_HxWxC, step, dataformats="HWC")

  def text(self, step: int, name: str, value: str) -> None:
    if self._writer is not None:
      self._writer.add_text(name, value, step)

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


def heatmap(matrix_RxC: np.ndarray, row_labels: list[str],
            col_labels: list[str], title: str) -> np.ndarray:
  """A labelled heat map of `matrix_RxC` as an RGB uint8 image (H, W, 3).

  Drawn on a figure of its own with the Agg canvas, so matplotlib's global
  backend is left as the user set it.
  """
  # Imported here: matplotlib takes a while to import and most runs never
  # draw a heat map.
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  r, c = matrix_RxC.shape
  if len(row_labels) != r or len(col_labels) != c:
    raise ConfigError(f"heatmap: {r}x{c} matrix but {len(row_labels)} row "
                      f"and {len(col_labels)} column labels.")
  size = 0.35 * max(r, c) + 2.5
  fig = figure.Figure(figsize=(size, size), dpi=80)
  canvas = backend_agg.FigureCanvasAgg(fig)
  ax = fig.subplots()
  im = ax.imshow(matrix_RxC, cmap="viridis", vmin=0.0, aspect="auto")
  ax.set_xticks(range(c), col_labels, rotation=90, fontsize=7)
  ax.set_yticks(range(r), row_labels, fontsize=7)
  ax.set_title(title, fontsize=9)
  fig.colorbar(im, ax=ax, fraction=0.046)
  fig.tight_layout()
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class Averager:
  """Means of per-step scalars over a logging window."""

  def __init__(self):
    self._sums = collections.defaultdict(float)
    self._count = 0

  def add(self, values: dict[str, float]) -> None:
    for k, v in values.items():
      self._sums[k] += float(v)
    self._count += 1

  def pop(self) -> dict[str, float]:
    out = {k: v / max(self._count, 1) for k, v in self._sums.items()}
    self._sums.clear()
    self._count = 0
    return out


def finite_or_raise(step: int, values: dict[str, np.ndarray]) -> None:
  """Stops the run at the first step whose loss or gradient is not finite."""
  for key in ("loss", "grad_norm"):
    value = float(values[key])
    if not np.isfinite(value):
      raise FloatingPointError(
          f"Training diverged: {key} is {value} at step {step}. Lower the "
          "learning rate, add warmup or gradient clipping "
          "(config.optim.grad_clip_norm), or check the data.")


HISTOGRAM_PREFIX = "hist/"


def split_histograms(values: dict[str, np.ndarray]
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """(scalars, arrays): metrics under "hist/" are arrays for a histogram,
  keyed without the prefix."""
  scalars = {k: v for k, v in values.items()
             if not k.startswith(HISTOGRAM_PREFIX)}
  arrays = {k[len(HISTOGRAM_PREFIX):]: v for k, v in values.items()
            if k.startswith(HISTOGRAM_PREFIX)}
  return scalars, arrays
