"""Orbax checkpoints of the train state plus the data-iterator state.

Each checkpoint step holds three items:
  state  the TrainState pytree (StandardSave: restores onto given shardings)
  data   the grain iterator state (JSON), so a resumed run reads exactly the
         batches it would have read
  meta   what the state was made for: model and data config, optimizer name
         and every parameter's shape. Restoring into a run whose config
         differs fails with an error that names the difference.

Faults lose nothing:
  - a checkpoint that does not restore (a corrupt or half-written newest
    step) is set aside in `workdir/checkpoints_corrupt/<step>`, never
    deleted, and the next older one is restored instead; the run says
    which it skipped and why;
  - a save that fails (a full disk, a lost mount) raises CheckpointError
    naming the path and the cause; orbax writes each step to a temporary
    folder first, so the checkpoints already saved stay intact.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from typing import Any

from absl import logging
import jax
import orbax.checkpoint as ocp

from accel.errors import AccelError
from accel.errors import CheckpointError
from accel.train import state as state_lib

_ITEMS = ("state", "data", "meta")
CORRUPT_DIR = "checkpoints_corrupt"


class CheckpointMismatchError(AccelError, ValueError):
  """The checkpoint in the workdir was written by a different model/config."""


def _differences(saved: Any, current: Any, path: str = "") -> list[str]:
  if isinstance(saved, dict) and isinstance(current, dict):
    out = []
    for key in sorted(set(saved) | set(current), key=str):
      sub = f"{path}.{key}" if path else str(key)
      if key not in saved:
        out.append(f"{sub}: not in the checkpoint, {current[key]!r} now")
      elif key not in current:
        out.append(f"{sub}: {saved[key]!r} in the checkpoint, absent now")
      else:
        out.extend(_differences(saved[key], current[key], sub))
    return out
  if isinstance(saved, (list, tuple)) and isinstance(current, (list, tuple)):
    saved, current = list(saved), list(current)
  return [] if saved == current else [
      f"{path}: {saved!r} in the checkpoint, {current!r} now"]


def _first_line(e: BaseException, limit: int = 240) -> str:
  text = next((l.strip() for l in str(e).splitlines() if l.strip()), "")
  text = f"{type(e).__name__}: {text}" if text else type(e).__name__
  return text if len(text) <= limit else text[:limit - 3] + "..."


def save_failure_cause(e: BaseException) -> str:
  """What made a save fail, in a few words: the OS error found anywhere in
  the chain of `e` (a full disk, a read-only or vanished mount), else the
  first line of the error."""
  seen = e
  while seen is not None:
    if isinstance(seen, OSError) and seen.errno:
      return os.strerror(seen.errno).lower()
    seen = seen.__cause__ or seen.__context__
  text = str(e)
  if "No space left" in text or "RESOURCE_EXHAUSTED" in text:
    return os.strerror(errno.ENOSPC).lower()
  return _first_line(e)


def run_meta(config, params) -> dict[str, Any]:
  """What a checkpoint records of the run that wrote it, and a resume or a
  distillation teacher checks: model, data, optimizer, parameter shapes."""
  return {"model": config.model.to_dict(), "data": config.data.to_dict(),
          "optimizer": config.optim.name,
          "param_shapes": state_lib.param_shapes(params)}


class Checkpointer:
  """Saves and restores one run's checkpoints under `workdir/checkpoints`."""

  def __init__(self, workdir: str, meta: dict[str, Any], max_to_keep: int,
               *, log=None):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.corrupt_directory = os.path.abspath(os.path.join(workdir,
                                                          CORRUPT_DIR))
    self._meta = meta
    self._log = log or (lambda text: print(text, file=sys.stderr))
    self._saving: int | None = None  # the step of a save in flight
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True),
        item_names=_ITEMS)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state, data_state: dict[str, Any]) -> None:
    """Starts an asynchronous save; training goes on while it writes.

    Raises CheckpointError when this save, or the previous one still in
    flight, failed.
    """
    self.check()
    try:
      self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          data=ocp.args.JsonSave(data_state),
          meta=ocp.args.JsonSave(self._meta)))
    except Exception as e:  # orbax and tensorstore raise many types
      raise self._failed(step, e) from e
    self._saving = step

  def check(self) -> None:
    """Raises CheckpointError if the save in flight has failed so far."""
    try:
      self._manager.check_for_errors()
    except Exception as e:  # pylint: disable=broad-except
      raise self._failed(self._saving, e) from e

  def wait(self) -> None:
    """Blocks until the save in flight is written; CheckpointError if it
    failed."""
    try:
      self._manager.wait_until_finished()
      self._manager.check_for_errors()
    except Exception as e:  # pylint: disable=broad-except
      raise self._failed(self._saving, e) from e
    self._saving = None

  def _failed(self, step, e: BaseException) -> CheckpointError:
    self._saving = None
    intact = [s for s in self._manager.all_steps() if s != step]
    kept = (f"The newest intact checkpoint is step {max(intact)} in "
            f"{self.directory}" if intact else
            "No earlier checkpoint exists")
    where = os.path.join(self.directory, str(step)) if step is not None \
        else self.directory
    return CheckpointError(
        f"Saving the checkpoint at step {step} to {where} failed: "
        f"{save_failure_cause(e)}. {kept}; the run stopped. Fix the cause "
        "and run the same command to resume.")

  def restore_latest(self, abstract_state):
    """(state, data_state, step) of the newest checkpoint that restores, or
    None when there is none.

    `abstract_state` (from jax.eval_shape, optionally with shardings) is the
    restore target; it may live on a different mesh than the one saved. A
    checkpoint written for another config raises CheckpointMismatchError; one
    that does not restore is set aside (module doc) and the next older one
    is tried. Raises CheckpointError when checkpoints exist but none
    restores.
    """
    skipped = []
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        meta = self._manager.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
      except Exception as e:  # pylint: disable=broad-except
        skipped.append(self._set_aside(step, e))
        continue
      diffs = _differences(meta, self._meta)
      if diffs:
        raise CheckpointMismatchError(
            f"The checkpoint at step {step} in {self.directory} was written "
            "by a different model or config, so this run cannot resume from "
            "it:\n  " + "\n  ".join(diffs)
            + "\nUse a new --workdir, or restore the config it was made with.")
      try:
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=ocp.args.JsonRestore()))
      except Exception as e:  # pylint: disable=broad-except
        skipped.append(self._set_aside(step, e))
        continue
      return restored.state, restored.data, step
    if skipped:
      raise CheckpointError(
          f"No checkpoint in {self.directory} restores; "
          f"{', '.join(skipped)}. Run the same command again to start from "
          "scratch, or copy a good checkpoint back.")
    return None

  def _set_aside(self, step: int, e: BaseException) -> str:
    """Moves step `step` out of the checkpoints (only process 0 moves it),
    says so, and returns a short note of it."""
    source = os.path.join(self.directory, str(step))
    target = os.path.join(self.corrupt_directory, str(step))
    if jax.process_index() == 0 and os.path.exists(source):
      os.makedirs(self.corrupt_directory, exist_ok=True)
      n = 1
      while os.path.exists(target):
        target = os.path.join(self.corrupt_directory, f"{step}.{n}")
        n += 1
      shutil.move(source, target)
    self._manager.reload()
    note = f"step {step} set aside in {target}"
    message = (f"Skipped the checkpoint at step {step}: it does not restore "
               f"({_first_line(e)}). Moved it to {target}.")
    logging.warning("%s", message)
    if jax.process_index() == 0:
      self._log(message)
    return note

  def reached_preemption(self, step: int) -> bool:
    """Whether the job is being preempted at `step` (several processes:
    jax.distributed's preemption notice, the same step on every one)."""
    return self._manager.reached_preemption(step)

  def close(self) -> None:
    self._manager.close()
