"""Intervals on time-to-target ratios, and the verdict they allow.

A ratio of a method's mean train seconds to target over the baseline's
comes with a percentile bootstrap interval that resamples

  - the seeds, paired (seed s of the method with seed s of the baseline:
    they share the data order), each trial's seconds carrying its own step
    count and timing noise; and
  - where the suite timed both methods' whole steps in interleaved rounds
    (accel.bench.overhead), the rounds, paired too: the resampled ratio of
    median step times over its value on all rounds scales each draw, so
    round-to-round timing noise widens the interval.

With 3 seeds a paired bootstrap has only 10 distinct draws of seeds: the
intervals are coarse, and say so by being wide. A ratio whose interval
holds 1 is a tie, never a win.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

LEVEL = 0.95
DRAWS = 4000


def _draws(n: int, draws: int, rng) -> np.ndarray:
  return rng.integers(0, n, size=(draws, n))


def ratio_interval(values: Sequence[float | None],
                   base_values: Sequence[float | None], *,
                   rounds: Sequence[float] | None = None,
                   base_rounds: Sequence[float] | None = None,
                   level: float = LEVEL, draws: int = DRAWS,
                   seed: int = 0) -> dict[str, float] | None:
  """{"ratio", "low", "high"}: mean(values) / mean(base_values) and its
  bootstrap interval at `level`; None when either side missed the target
  on some seed (None in its values) or has no values.

  `rounds`, `base_rounds`: per-round step times of the method and the
  baseline from interleaved timing rounds (equal length), or None.
  """
  if not values or not base_values or any(
      v is None for v in (*values, *base_values)):
    return None
  v = np.asarray(values, np.float64)
  b = np.asarray(base_values, np.float64)
  rng = np.random.default_rng(seed)
  if len(v) == len(b):
    idx = _draws(len(v), draws, rng)
    ratios = v[idx].mean(axis=1) / b[idx].mean(axis=1)
  else:
    ratios = (v[_draws(len(v), draws, rng)].mean(axis=1)
              / b[_draws(len(b), draws, rng)].mean(axis=1))
  if rounds is not None and base_rounds is not None and len(rounds) > 1:
    if len(rounds) != len(base_rounds):
      raise ValueError(f"interleaved rounds must pair up: {len(rounds)} "
                       f"against {len(base_rounds)}.")
    r = np.asarray(rounds, np.float64)
    rb = np.asarray(base_rounds, np.float64)
    idx = _draws(len(r), draws, rng)
    timing = (np.median(r[idx], axis=1) / np.median(rb[idx], axis=1)
              / (np.median(r) / np.median(rb)))
    ratios = ratios * timing
  tail = 100 * (1 - level) / 2
  low, high = np.percentile(ratios, [tail, 100 - tail])
  return {"ratio": float(v.mean() / b.mean()), "low": float(low),
          "high": float(high)}


def verdict(interval: dict[str, float] | None) -> str:
  """'faster' when the whole interval is below 1, 'slower' when above,
  else 'tie'; 'undefined' without an interval."""
  if interval is None:
    return "undefined"
  if interval["high"] < 1.0:
    return "faster"
  if interval["low"] > 1.0:
    return "slower"
  return "tie"

