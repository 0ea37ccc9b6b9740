"""One benchmark trial: train a config, evaluate on a fixed schedule, and
record when (in steps and in wall-clock) the test metric first reaches a
target.

Bookkeeping rules (AlgoPerf-like):
  - the train and eval programs are compiled ahead of time; compile time is
    reported separately and never counted;
  - `train_s` counts only training (input pipeline + steps, blocked at each
    evaluation point), never evaluation;
  - the target is reached at the first evaluation whose metric is >= target;
    steps and train seconds to target are those at that evaluation;
  - a workload may set a maximum runtime (`max_train_s`, AlgoPerf's): a
    trial stops at the first evaluation at or past it, and what it has not
    reached by then it misses.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import numpy as np

from accel.bench import flops as flops_lib
from accel.train import build as build_lib
from accel.train import control
from accel.train import memory as memory_lib
from accel.train import loop as loop_lib
from accel.train import metrics as metrics_lib


def first_reach(curve: list[dict[str, float]], target: float | None,
                metric: str = "accuracy") -> dict[str, float | None]:
  """Steps, train seconds and examples forward-passed (where the curve
  counts them) at the first point of `curve` with metric >= target (None
  when never reached or no target)."""
  if target is not None:
    for point in curve:
      if point[metric] >= target:
        return {"steps_to_target": point["step"],
                "seconds_to_target": point["train_s"],
                "examples_to_target": point.get("examples")}
  return {"steps_to_target": None, "seconds_to_target": None,
          "examples_to_target": None}


def examples_forwarded(config, steps: int) -> int:
  """Examples passed forward through the model in `steps` train steps: the
  batch, plus every candidate a scoring pass reads after the selection's
  warm-up (scoring passes count)."""
  n = steps * config.batch_size
  if config.selection.scorer not in ("none", "uniform", "stale_loss"):
    scored = max(0, steps - config.selection.warmup_steps)
    n += scored * build_lib.candidates_per_step(config)
  return n


def _summary(curve: list[dict[str, Any]]) -> dict[str, Any]:
  return {"final_accuracy": curve[-1]["accuracy"],
          "final_loss": curve[-1]["loss"],
          "best_accuracy": max(p["accuracy"] for p in curve),
          "steps": curve[-1]["step"]}


def cut(record: dict[str, Any], max_train_s: float | None) -> dict[str, Any]:
  """`record` (run_trial's) as if it had stopped at `max_train_s`: its
  curve up to the first evaluation at or past that many train seconds, the
  final numbers taken there, and `stopped_at_s` set; unchanged when it
  never got there (or no limit). A trial run under the limit and one run
  without it and cut give the same record."""
  if not max_train_s:
    return record
  curve = record["curve"]
  over = next((i for i, p in enumerate(curve)
               if p["train_s"] >= max_train_s), None)
  if over is None:
    return record
  kept = curve[:over + 1]
  return {**record, "curve": kept, **_summary(kept),
          "stopped_at_s": float(max_train_s)}


def run_trial(config, *, eval_every: int, target: float | None = None,
              stop_at_target: bool = False,
              max_train_s: float | None = None) -> dict[str, Any]:
  """Trains `config` (no checkpoints, no logging) and returns its curve;
  with `max_train_s`, stops at the first evaluation at or past that many
  train seconds (`cut`).

  Returns a dict with `curve` (step, train_s, accuracy, loss per eval, and
  `train`: the train-step metrics of the step before the eval),
  `final_*`, `best_accuracy`, `compile_s`, `step_ms` (mean train time per
  step), `flops_per_step` and `mfu` (accel.bench.flops; None where not
  known), `memory` (memory_stats), `stopped_at_s` (the limit where it
  stopped there, else None) and the first-reach numbers for `target`.
  """
  parts = build_lib.build(config)
  source, steps = parts.source, parts.steps
  state = steps.init()
  it = source.train_iterator(build_lib.candidates_per_step(config),
                             config.seed,
                             exclude=control.held_out_ids(config, source))
  batch = steps.train_batch(next(it))

  t0 = time.perf_counter()
  train_fn = steps.train.lower(state, batch).compile()
  eval_batch = steps.eval_batch(next(iter(source.eval_batches(
      config.eval_batch_size, "test", None))))
  eval_fn = steps.evaluate.lower(state, eval_batch).compile()
  # The break-even controller's switch (accel.train.control), when the
  # selection has one: its plain program and probe are compiled here too.
  switch = None
  if steps.train_passive is not None:
    passive_fn = steps.train_passive.lower(state, batch).compile()
    cheaper_fns = tuple(f.lower(state, batch).compile()
                        for f in steps.train_cheaper)
    switch = control.make_switch(config, parts.model, source,
                                 parts.optimizer, train_fn, passive_fn,
                                 steps.eval_batch, train_cheaper=cheaper_fns)
    if switch is not None:
      switch.warm_up(state)
  compile_s = time.perf_counter() - t0
  # The loop's evaluation, with the programs compiled above.
  compiled = dataclasses.replace(steps, train=train_fn, evaluate=eval_fn)

  def evaluate(st):
    return loop_lib.evaluate(compiled, st, source, config)

  curve, train_s, reached, stopped = [], 0.0, None, False
  for start in range(0, config.total_steps, eval_every):
    n = min(eval_every, config.total_steps - start)
    t0 = time.perf_counter()
    for i in range(n):
      if start + i:  # the first batch was drawn before compiling
        batch = steps.train_batch(next(it))
      state, metrics = (train_fn(state, batch) if switch is None
                        else switch(state, batch, start + i))
      if steps.block_each_step:
        jax.block_until_ready(metrics)
    jax.block_until_ready(metrics)
    train_s += time.perf_counter() - t0
    result = evaluate(state)
    scalars, _ = metrics_lib.split_histograms(jax.device_get(metrics))
    last = {k: float(v) for k, v in scalars.items()}
    curve.append({"step": start + n, "train_s": train_s,
                  "examples": examples_forwarded(config, start + n),
                  **result, "train": last})
    if not np.isfinite(result["loss"]):
      break
    if target is not None and result["accuracy"] >= target:
      reached = reached or curve[-1]
      if stop_at_target:
        break
    stopped = bool(max_train_s) and train_s >= max_train_s
    if stopped:
      break
  steps_done = curve[-1]["step"]
  step_ms = 1e3 * train_s / max(steps_done, 1)
  flops = flops_lib.step_flops(train_fn)
  peak = flops_lib.peak_flops(jax.devices()[0].device_kind,
                              config.precision.compute)
  controller = None if switch is None else [
      dataclasses.asdict(d) for d in switch.controller.decisions]
  return {"curve": curve, **_summary(curve),
          "controller": controller,
          "stopped_at_s": float(max_train_s) if stopped else None,
          "compile_s": compile_s,
          "memory": memory_lib.memory_stats(train_fn),
          "step_ms": step_ms, "flops_per_step": flops,
          "mfu": flops_lib.mfu(flops, step_ms / 1e3, peak),
          **first_reach(curve, target)}
