"""A suite's results read under AlgoPerf's two rulesets.

  external tuning  each method at the learning rate (and schedule) its grid
                   chose on the tuning seeds; its time to target on the
                   report seeds, and the same plus the whole sweep's time;
  self-tuning      one run per seed at the method's library default, no
                   sweep ("<method>"); a method tuned on a grid also enters
                   with its sweep's time added to its tuned time to target
                   ("<method>+sweep").

Each ruleset gives {workload: {entry: mean train seconds to target}}
(infinite where the entry missed the target on some seed) for
accel.bench.profiles, and per-seed values for accel.bench.intervals.
"""

from __future__ import annotations

import math
from typing import Any

from accel.bench import intervals

EXTERNAL = "external tuning"
SELF_TUNING = "self-tuning"


def _mean(stats) -> float:
  return math.inf if stats is None or stats["mean"] is None else stats["mean"]


def entries(w: dict[str, Any], ruleset: str) -> dict[str, dict[str, Any]]:
  """{entry: its seconds-to-target stats} of one workload's result."""
  if ruleset == EXTERNAL:
    return {m: s["seconds_to_target"] for m, s in w["summary"].items()}
  if ruleset == SELF_TUNING:
    out = {m: s["seconds_to_target"]
           for m, s in (w.get("self_tuning") or {}).items()}
    out.update({f"{m}+sweep": s["seconds_with_sweep"]
                for m, s in w["summary"].items() if "seconds_with_sweep" in s})
    return out
  raise ValueError(f"Unknown ruleset {ruleset!r}; expected {EXTERNAL!r} or "
                   f"{SELF_TUNING!r}.")


# The hand-designed optimizers accel's methods must beat, tuned (the bar
# is the best of them on each workload, not AdamW alone).
PEERS = ("adamw", "nadamw", "schedule_free_adamw", "muon")


def best_peer(w: dict[str, Any], peers=PEERS) -> str | None:
  """The peer with the least mean train seconds to target under external
  tuning among those that reach it on every seed (None if none does)."""
  es = entries(w, EXTERNAL)
  reached = [(es[p]["mean"], p) for p in peers
             if p in es and es[p]["mean"] is not None]
  return min(reached)[1] if reached else None


def has(results: dict[str, Any], ruleset: str) -> bool:
  """Whether the run measured `ruleset` on every workload. The self-tuning
  ruleset needs its default-rate runs: a run without them has only the
  tuned methods' "+sweep" times, and no baseline entry to compare them
  with."""
  if ruleset == SELF_TUNING and not all(
      w.get("self_tuning") for w in results["workloads"].values()):
    return False
  return all(entries(w, ruleset) for w in results["workloads"].values())


def times(results: dict[str, Any], ruleset: str,
          family: str | None = None) -> dict[str, dict[str, float]]:
  """{workload: {entry: mean seconds to target}}; with `family`, only the
  workloads of that family (accel.bench.split)."""
  return {wname: {e: _mean(s) for e, s in entries(w, ruleset).items()}
          for wname, w in results["workloads"].items()
          if family is None or family_of(w) == family}


def family_of(w: dict[str, Any]) -> str | None:
  return (w.get("family") or {}).get("family")


def step_rounds(w: dict[str, Any], method: str) -> list[float] | None:
  """The whole-step times of `method` in the workload's interleaved timing
  rounds, where the run kept them."""
  for r in w.get("update_overhead") or []:
    if r["method"] == method:
      return r.get("step_ms_rounds")
  return None


def ratio_interval(w: dict[str, Any], ruleset: str, entry: str,
                   reference: str) -> dict[str, float] | None:
  """`entry`'s time to target over `reference`'s on one workload, with its
  bootstrap interval (accel.bench.intervals): seeds, and the timing rounds
  where both are optimizers timed in the same interleaved rounds."""
  es = entries(w, ruleset)
  if entry not in es or reference not in es:
    return None
  base = lambda e: e.split("+")[0]
  return intervals.ratio_interval(
      es[entry]["values"], es[reference]["values"],
      rounds=step_rounds(w, base(entry)),
      base_rounds=step_rounds(w, base(reference)))

