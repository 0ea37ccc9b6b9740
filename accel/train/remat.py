"""`remat="auto"`: the activation-checkpointing policy chosen by measuring.

Each candidate policy (accel.models.remat) compiles the run's train step;
XLA's memory analysis of the compiled step gives its peak
(accel.train.memory.compiled_mb) and a few timed steps its speed. The
choice is the fastest candidate whose peak fits `config.memory_budget_mb`
(0: no budget, so the fastest). The thesis has attention choose; a choice
measured on the program that will run is one we can stand behind.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

import jax
import numpy as np

from accel.errors import ConfigError
from accel.models import remat as remat_lib
from accel.train import build as build_lib
from accel.train import memory as memory_lib

# Candidates, cheapest in recomputation first.
CANDIDATES = ("none", "dots_saveable", "dots_with_no_batch_dims_saveable",
              "save_names", "offload", "full")


def measure(config, policy: str, *, steps: int = 5,
            mesh: jax.sharding.Mesh | None = None) -> dict[str, Any]:
  """{"policy", "peak_mb", "step_ms"} of `config`'s train step under
  `policy` (median of `steps` timed steps after one warm-up step), or
  {"policy", "error"} where the backend cannot compile it (offload on a
  backend without host memory)."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.remat = policy
  parts = build_lib.build(c, mesh)
  state = parts.steps.init()
  it = parts.source.train_iterator(build_lib.candidates_per_step(c), c.seed)
  batch = parts.steps.train_batch(next(it))
  try:
    compiled = parts.steps.train.lower(state, batch).compile()
  except Exception as e:  # pylint: disable=broad-except
    return {"policy": policy, "error": f"{type(e).__name__}: {e}"[:200]}
  peak = memory_lib.compiled_mb(compiled)
  times = []
  for i in range(steps + 1):
    t0 = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    if i:  # the first step warms caches up
      times.append(time.perf_counter() - t0)
  return {"policy": policy, "peak_mb": peak,
          "step_ms": 1e3 * float(np.median(times))}


def choose(config, *, mesh: jax.sharding.Mesh | None = None,
           candidates=CANDIDATES, log: Callable[[str], None] = print
           ) -> tuple[str, list[dict[str, Any]]]:
  """(the chosen policy, every candidate's measurement) for `config`."""
  budget = float(config.memory_budget_mb)
  rows = [measure(config, p, mesh=mesh) for p in candidates]
  fits = [r for r in rows if "error" not in r and r["peak_mb"] is not None
          and (not budget or r["peak_mb"] <= budget)]
  for r in rows:
    log(f"  remat {r['policy']:<33} " + (
        f"unavailable ({r['error']})" if "error" in r else
        f"peak {r['peak_mb']:8.2f} MB, step {r['step_ms']:8.2f} ms"))
  if not fits:
    measured = [r for r in rows if "error" not in r]
    least = min(measured, key=lambda r: r["peak_mb"])
    raise ConfigError(
        f"No remat policy fits config.memory_budget_mb={budget:g}: the "
        f"smallest peak is {least['policy']}'s {least['peak_mb']:.2f} MB. "
        "Raise the budget or shrink the batch.")
  best = min(fits, key=lambda r: r["step_ms"])
  log(f"remat=auto chose {best['policy']!r}: the fastest of "
      f"{len(fits)} policies under "
      + (f"{budget:g} MB." if budget else "no memory budget."))
  return best["policy"], rows


def resolve(config, workdir: str | None = None, **kwargs):
  """`config` itself, or with `remat="auto"` a copy with the chosen policy;
  the measurements go to WORKDIR/remat.json when `workdir` is given."""
  if config.remat != "auto":
    return config
  policy, rows = choose(config, **kwargs)
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.remat = policy
  if workdir:
    with open(os.path.join(workdir, "remat.json"), "w") as f:
      json.dump({"chosen": policy, "memory_budget_mb":
                 float(config.memory_budget_mb), "candidates": rows}, f,
                indent=1)
  return c
