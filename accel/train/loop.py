"""`run(config, workdir)`: one training run, resumed if the workdir has one."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from absl import logging
import jax
import numpy as np
import tqdm

from accel import data
from accel import parallel
from accel.errors import RunStopped
from accel.train import build as build_lib
from accel.train import checkpoint
from accel.train import control
from accel.train import config as config_lib
from accel.train import metrics as metrics_lib
from accel.train import remat as remat_lib
from accel.train import state as state_lib


def evaluate(steps: build_lib.Steps, state, source: data.Source, config
             ) -> dict[str, float]:
  """Loss and accuracy over the test split (or its first N examples); for
  classification also the accuracy of the worst class. Every process reads
  every evaluation batch; the mesh splits each."""
  limit = config.eval_max_examples if config.eval_max_examples > 0 else None
  sums = None
  for batch in source.eval_batches(config.eval_batch_size, "test", limit):
    out = jax.device_get(steps.evaluate(state, steps.eval_batch(batch)))
    sums = out if sums is None else jax.tree.map(np.add, sums, out)
  n = max(float(sums["weight_sum"]), 1e-9)
  result = {"loss": float(sums["loss_sum"]) / n,
            "accuracy": float(sums["correct_sum"]) / n}
  if "blocks_sum" in sums:  # adaptive depth: blocks an example used
    result["mean_blocks"] = float(sums["blocks_sum"]) / n
  if "class_count" in sums:
    present = sums["class_count"] > 0
    per_class = sums["class_correct"][present] / sums["class_count"][present]
    result["worst_class_accuracy"] = float(per_class.min())
  return result


def _log_heatmaps(writer, step: int, optimizer, state) -> None:
  """The optimizer's heat maps (e.g. meta-attention weights) as images."""
  for name, h in optimizer.heatmaps(state.opt_state, state.params).items():
    writer.image(step, name, metrics_lib.heatmap(
        h.matrix_RxC, h.row_labels, h.col_labels, f"{h.title}, step {step}"))


class _ScoringClock:
  """The scoring pass's share of a train step, for the logs: the scorer
  compiled on its own and timed on the step's candidates once per logging
  window (one extra forward pass per window)."""

  def __init__(self, selector):
    self._score = jax.jit(selector.scorer)
    self._warm = False

  def share(self, params, candidates, step_seconds: float) -> float:
    if not self._warm:
      jax.block_until_ready(self._score(params, candidates))
      self._warm = True
    t0 = time.perf_counter()
    jax.block_until_ready(self._score(params, candidates))
    return min(1.0, (time.perf_counter() - t0) / step_seconds)


class _Preemption:
  """Whether the scheduler asked this job to stop (SIGTERM, which a
  preempted TPU VM or a SLURM time limit sends). One process: a SIGTERM
  handler sets a flag the loop reads after each step. Several processes:
  orbax's preemption sync point over jax.distributed, so that every
  process stops at the same step."""

  def __init__(self, ckpt: checkpoint.Checkpointer):
    self._ckpt = ckpt
    self._several = jax.process_count() > 1
    self._asked = False
    self._previous = None

  def __enter__(self):
    if (not self._several
        and threading.current_thread() is threading.main_thread()):
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
    return self

  def _on_sigterm(self, signum, frame):
    del signum, frame
    self._asked = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def asked(self, step: int) -> bool:
    if self._several:
      return self._ckpt.reached_preemption(step)
    return self._asked


def _write_config(workdir: str, config) -> None:
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))


def _restore_or_init(ckpt, steps, train_iter, is_main):
  """(state, resumed from this step or None) for the run's mesh."""
  restored = ckpt.restore_latest(steps.abstract_state)
  if restored is None:
    return steps.init(), None
  state, data_state, start = restored
  train_iter.set_state(data_state)
  logging.info("Resumed from the checkpoint at step %d in %s.", start,
               ckpt.directory)
  if is_main:
    print(f"Resuming from the checkpoint at step {start} "
          f"({ckpt.directory}).")
  return state, start


def _resume_hint(ckpt) -> str:
  latest = ckpt.latest_step()
  return ("run the same command to resume" + (
      f" from the checkpoint at step {latest}" if latest is not None
      else " (no checkpoint yet: it starts over)"))


def run(config, workdir: str, *, stop_after: int | None = None,
        on_eval: Callable[[int, dict[str, float]], bool] | None = None
        ) -> dict[str, Any]:
  """Trains `config` in `workdir` and returns the final test metrics.

  `stop_after` ends this call after that many steps (counted from 0) with a
  checkpoint, as a pre-empted job would; running again resumes.

  `on_eval(step, metrics)` is called after each periodic evaluation (every
  `config.eval_every` steps, not the final one). When it returns True the
  run stops there for good, as a sweep's pruned trial does: it saves a
  checkpoint and returns that evaluation's metrics, with `stopped_early`
  set, without a final evaluation.

  Sections of the run, in order: set-up; input, model, optimizer and the
  sharded compiled steps; state (restored onto this run's mesh from the
  newest checkpoint that restores); the loop; the final evaluation.

  Stopping early loses nothing. SIGTERM saves a checkpoint at the current
  step and raises RunStopped (exit status 143 in the binary); Ctrl-C
  raises RunStopped (130) after the save in flight is written, and the run
  resumes from its last checkpoint. A save that fails raises
  CheckpointError naming the path and the cause.
  """
  # --- Set-up -------------------------------------------------------------
  config_lib.validate(config)
  os.makedirs(workdir, exist_ok=True)
  is_main = jax.process_index() == 0

  # --- Input, model, optimizer, selection; mesh, shardings, compiled steps
  config = remat_lib.resolve(config, workdir,
                             log=print if is_main else lambda _: None)
  parts = build_lib.build(config)
  source, steps = parts.source, parts.steps
  logging.info("%s", build_lib.describe(steps))

  # --- State: fresh, or restored (onto this run's mesh) from the workdir --
  ckpt = checkpoint.Checkpointer(
      workdir, checkpoint.run_meta(config, steps.abstract_state.params),
      config.keep_checkpoints)
  train_iter = source.train_iterator(
      parallel.process_batch_size(build_lib.candidates_per_step(config)),
      config.seed, process_index=jax.process_index(),
      process_count=jax.process_count(),
      exclude=control.held_out_ids(config, source))
  state, resumed_from = _restore_or_init(ckpt, steps, train_iter, is_main)
  if is_main:  # only now: a refused resume leaves the workdir as it was
    _write_config(workdir, config)
  start_step = int(jax.device_get(state.step))
  logging.info("%s: %s parameters.", config.model.name,
               f"{state_lib.num_params(state.params):,}")

  # --- Loop ---------------------------------------------------------------
  # Resumed: what an earlier process logged after its checkpoint goes.
  writer = metrics_lib.MetricWriter(
      workdir, enabled=is_main,
      purge_step=None if resumed_from is None else resumed_from + 1)
  averager = metrics_lib.Averager()
  bar = tqdm.tqdm(total=config.total_steps, initial=start_step, unit="step",
                  disable=not (is_main and config.progress_bar),
                  dynamic_ncols=True)
  pending = None  # (step, device metrics): read one step late
  # The stale_loss scorer runs no scoring pass: nothing to time.
  scoring_clock = (_ScoringClock(parts.selector) if parts.selector is not None
                   and parts.selector.scorer is not None else None)
  # The break-even controller's choice of program, step by step.
  switch = control.make_switch(config, parts.model, source, parts.optimizer,
                               steps.train, steps.train_passive,
                               steps.eval_batch, start_step,
                               train_cheaper=steps.train_cheaper)
  window_start, window_steps = time.perf_counter(), 0
  done = start_step
  stopped_early, result = False, None

  def consume(step_and_metrics):
    step, device_metrics = step_and_metrics
    values, arrays = metrics_lib.split_histograms(
        jax.device_get(device_metrics))
    metrics_lib.finite_or_raise(step, values)
    averager.add(values)
    return values, arrays

  end_step = config.total_steps
  if stop_after is not None:
    end_step = max(start_step, min(end_step, stop_after))
  try:
    # Every host <-> device copy in the loop is explicit (device_put of the
    # batch, device_get of the metrics): an implicit one is an error, as in
    # big_vision, since it would stall the device each step.
    with jax.transfer_guard("disallow"), _Preemption(ckpt) as preemption:
      for step in range(start_step, end_step):
        batch = steps.train_batch(next(train_iter))
        state, device_metrics = (steps.train(state, batch) if switch is None
                                 else switch(state, batch, step))
        if steps.block_each_step:
          jax.block_until_ready(device_metrics)
        if pending is not None:
          consume(pending)
        pending = (step, device_metrics)
        window_steps += 1
        done = step + 1
        bar.update(1)

        if done % config.log_every == 0 or done == end_step:
          values, arrays = consume(pending)
          pending = None
          ckpt.check()  # a save that failed since stops the run now
          elapsed = time.perf_counter() - window_start
          logged = {f"train/{k}": v for k, v in averager.pop().items()}
          logged["train/step_time_ms"] = 1e3 * elapsed / window_steps
          logged["train/examples_per_sec"] = (
              window_steps * config.batch_size / elapsed)
          if scoring_clock and done > config.selection.warmup_steps:
            logged["train/selection/scoring_share"] = scoring_clock.share(
                state.params, batch, elapsed / window_steps)
          if switch is not None:
            logged.update({f"train/{k}": v
                           for k, v in switch.scalars().items()})
          writer.scalars(done, logged)
          writer.histograms(done, {f"train/{k}": v for k, v in arrays.items()})
          bar.set_postfix(loss=f"{values['loss']:.4f}",
                          acc=f"{values['accuracy']:.3f}")
          window_start, window_steps = time.perf_counter(), 0

        if config.eval_every and done % config.eval_every == 0 \
            and done != config.total_steps:
          result = evaluate(steps, state, source, config)
          writer.scalars(done, {f"eval/{k}": v for k, v in result.items()})
          _log_heatmaps(writer, done, parts.optimizer, state)
          bar.write(f"step {done}: test loss {result['loss']:.4f}, "
                    f"test accuracy {result['accuracy']:.4f}")
          stopped_early = bool(on_eval is not None and on_eval(done, result))

        preempted = preemption.asked(done)
        if preempted or stopped_early or done == end_step or (
            config.checkpoint_every and done % config.checkpoint_every == 0):
          if pending is not None:  # never save a state we have not checked
            consume(pending)
            pending = None
          if ckpt.latest_step() != done:
            ckpt.save(done, state, data.iterator_state(train_iter))
        if preempted:
          ckpt.wait()
          raise RunStopped(
              f"Preempted (SIGTERM) at step {done}: saved a checkpoint "
              f"there ({ckpt.directory}). Run the same command to resume.",
              exit_status=143)
        if stopped_early:
          break
    if pending is not None:
      consume(pending)
  except KeyboardInterrupt:
    ckpt.wait()
    raise RunStopped(f"Interrupted at step {done}; {_resume_hint(ckpt)}.",
                     exit_status=130) from None
  finally:
    bar.close()
    writer.flush()
    if sys.exc_info()[0] is None:
      ckpt.wait()
    else:  # already stopping: let the save in flight end, keep that error
      try:
        ckpt.wait()
      except Exception:  # pylint: disable=broad-except
        pass

  # --- Final evaluation (a run stopped by on_eval keeps its last one) -----
  final_step = int(jax.device_get(state.step))
  if stopped_early:
    result = {**result, "stopped_early": True}
  else:
    result = evaluate(steps, state, source, config)
    writer.scalars(final_step, {f"eval/{k}": v for k, v in result.items()})
    _log_heatmaps(writer, final_step, parts.optimizer, state)
  writer.close()
  ckpt.close()
  if is_main:
    print(f"{'Stopped at' if stopped_early else 'Final'} test accuracy: "
          f"{result['accuracy']:.4f} (test loss {result['loss']:.4f}, step "
          f"{final_step}, checkpoint in {ckpt.directory})")
    with open(os.path.join(workdir, "final_metrics.json"), "w") as f:
      json.dump({"step": final_step, **result}, f, indent=2)
  return {"step": final_step, "state": state, **result}
