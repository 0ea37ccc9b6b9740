"""Orbax checkpoints of the train state plus the data-iterator state.

Each checkpoint step holds three items:
  state  the TrainState pytree (StandardSave: restores onto given shardings)
  data   the grain iterator state (JSON), so a resumed run reads exactly the
         batches it would have read
  meta   what the state was made for: model and data config, optimizer name
         and every parameter's shape. Restoring into a run whose config
         differs fails with an error that names the difference.
"""

from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp

_ITEMS = ("state", "data", "meta")


class CheckpointMismatchError(ValueError):
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


class Checkpointer:
  """Saves and restores one run's checkpoints under `workdir/checkpoints`."""

  def __init__(self, workdir: str, meta: dict[str, Any], max_to_keep: int):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self._meta = meta
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True),
        item_names=_ITEMS)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state, data_state: dict[str, Any]) -> None:
    """Starts an asynchronous save; training goes on while it writes."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_state),
        meta=ocp.args.JsonSave(self._meta)))

  def restore_latest(self, abstract_state):
    """(state, data_state, step) of the newest checkpoint, or None.

    `abstract_state` (from jax.eval_shape, optionally with shardings) is the
    restore target; it may live on a different mesh than the one saved.
    """
    step = self._manager.latest_step()
    if step is None:
      return None
    meta = self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    diffs = _differences(meta, self._meta)
    if diffs:
      raise CheckpointMismatchError(
          f"The checkpoint at step {step} in {self.directory} was written by "
          "a different model or config, so this run cannot resume from it:\n  "
          + "\n  ".join(diffs)
          + "\nUse a new --workdir, or restore the config it was made with.")
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=ocp.args.JsonRestore()))
    return restored.state, restored.data, step

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()

