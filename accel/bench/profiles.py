"""AlgoPerf-style performance profiles and scores.

For a set of workloads and methods with a time to target each (infinite
where the method missed the target on some seed, or did not run), a
method's performance ratio on a workload is its time over the fastest
method's there. Its profile rho(tau) is the share of workloads with ratio
<= tau; its score is the area under rho from tau = 1 to TAU_MAX over
(TAU_MAX - 1): 1 for a method fastest everywhere, 0 for one that never
comes within TAU_MAX of the fastest (AlgoPerf integrates to 4).
"""

from __future__ import annotations

import math

import numpy as np

TAU_MAX = 4.0

Times = dict[str, dict[str, float]]  # {workload: {method: seconds}}


def performance_ratios(times: Times) -> dict[str, list[float]]:
  """{method: its ratio to the fastest, one per workload (inf when it
  missed, did not run, or no method reached the target there)}."""
  methods = sorted({m for by_method in times.values() for m in by_method})
  out = {m: [] for m in methods}
  for by_method in times.values():
    best = min(by_method.values(), default=math.inf)
    for m in methods:
      t = by_method.get(m, math.inf)
      out[m].append(t / best if math.isfinite(best) and math.isfinite(t)
                    else math.inf)
  return out


def curves(times: Times, taus: np.ndarray) -> dict[str, np.ndarray]:
  """{method: rho at each tau}."""
  return {m: np.mean([np.asarray(taus) >= r for r in rs], axis=0)
          if rs else np.zeros(len(taus))
          for m, rs in performance_ratios(times).items()}


def scores(times: Times, tau_max: float = TAU_MAX) -> dict[str, float]:
  """{method: the normalised area under its profile on [1, tau_max]}: the
  exact integral of the step function (a workload solved at ratio r adds
  (tau_max - r) / (tau_max - 1) when r < tau_max)."""
  return {m: float(np.mean([max(0.0, tau_max - r) / (tau_max - 1.0)
                            for r in rs])) if rs else 0.0
          for m, rs in performance_ratios(times).items()}
