"""Bootstrap intervals on time-to-target ratios, and their verdicts."""

import numpy as np
import pytest

from accel.bench import intervals


def test_interval_brackets_the_ratio_of_means():
  iv = intervals.ratio_interval([1.0, 1.1, 0.9], [2.0, 2.1, 1.9])
  assert iv["ratio"] == pytest.approx(0.5)
  # Paired seeds: every draw's ratio lies between the per-seed extremes.
  assert 0.9 / 1.9 <= iv["low"] <= 0.5 <= iv["high"] <= 1.1 / 2.1
  assert intervals.verdict(iv) == "faster"
  assert intervals.verdict(intervals.ratio_interval([2.0] * 3, [1.0] * 3)) \
      == "slower"


def test_spread_seeds_make_a_tie():
  # Mean ratio 0.9, but one seed alone is 1.5x slower: the interval holds 1.
  iv = intervals.ratio_interval([0.5, 0.7, 1.5], [1.0, 1.0, 1.0])
  assert iv["ratio"] == pytest.approx(0.9)
  assert iv["low"] < 1.0 < iv["high"]
  assert intervals.verdict(iv) == "tie"


def test_a_missed_seed_leaves_no_ratio():
  assert intervals.ratio_interval([1.0, None], [1.0, 1.0]) is None
  assert intervals.ratio_interval([1.0, 1.0], [None, 1.0]) is None
  assert intervals.ratio_interval([], [1.0]) is None
  assert intervals.verdict(None) == "undefined"


def test_timing_rounds_widen_the_interval_not_move_the_ratio():
  seeds = ([1.0, 1.05, 0.95], [1.25, 1.25, 1.25])
  alone = intervals.ratio_interval(*seeds)
  rng = np.random.default_rng(1)
  rounds = list(1.0 + 0.2 * rng.standard_normal(7))
  with_rounds = intervals.ratio_interval(*seeds, rounds=rounds,
                                         base_rounds=[1.0] * 7)
  assert with_rounds["ratio"] == alone["ratio"]
  assert (with_rounds["high"] - with_rounds["low"]
          > alone["high"] - alone["low"])
  with pytest.raises(ValueError, match="must pair up: 7 against 6"):
    intervals.ratio_interval(*seeds, rounds=rounds, base_rounds=[1.0] * 6)


def test_intervals_are_reproducible():
  a = intervals.ratio_interval([0.5, 0.7, 1.5], [1.0, 1.2, 0.9])
  b = intervals.ratio_interval([0.5, 0.7, 1.5], [1.0, 1.2, 0.9])
  assert a == b
