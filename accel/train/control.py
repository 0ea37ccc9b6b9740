"""The train step under the break-even controller: each step runs the
selecting program or the plain one (accel.selection.controller), and at the
end of each controller window the switch measures what the controller
decides on: the window's train seconds, the probe loss, and the selecting
steps' variance reduction, for the windows of its probes (a hold window is
not measured: no probe pass, no wait for the device).

Used by the train loop and the benchmark trials alike, so a benchmark pays
what a user pays: the probe's forward pass runs inside the timed steps.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import jax
import numpy as np

from accel.selection import controller as controller_lib

class SelectionSwitch:
  """`switch(state, batch, step) -> (state, metrics)`: the step the
  controller asks for; `scalars()` its latest decision for the logs."""

  def __init__(self, controller: controller_lib.BreakEven,
               train_on: Callable, train_off: Callable,
               probe: Callable[[Any], jax.Array], probe_trim: float,
               probe_clip: float | None = None,
               train_cheaper: tuple[Callable, ...] = (),
               ratios: tuple[float, ...] = ()):
    """`train_cheaper`: the selecting programs of the controller's arms
    1, 2, ... (arm 0 is `train_on`); `ratios`: every arm's candidate ratio,
    for the logs."""
    if controller.arms != 1 + len(train_cheaper):
      raise ValueError(f"a controller of {controller.arms} arms was given "
                       f"{1 + len(train_cheaper)} selecting programs.")
    self.controller = controller
    self._probe_trim, self._probe_clip = probe_trim, probe_clip
    self._on = (train_on,) + tuple(train_cheaper)
    self._off = train_off
    self._ratios = tuple(ratios)
    self._probe = probe
    self._window = None  # (start time, probe loss at start, taus)

  def warm_up(self, state) -> None:
    """Compiles the probe (a benchmark keeps compiling out of its timed
    steps)."""
    jax.block_until_ready(self._probe(state))

  def _probe_loss(self, state) -> float:
    losses = jax.device_get(self._probe(state))
    return controller_lib.trimmed_mean(np.asarray(losses), self._probe_trim,
                                       self._probe_clip)

  def __call__(self, state, batch, step: int):
    c = self.controller
    if step >= c.start_step and self._window is None and c.probing:
      jax.block_until_ready(state)
      self._window = (time.perf_counter(), self._probe_loss(state), [])
    on = c.selecting(step)
    state, metrics = (self._on[c.arm] if on else self._off)(state, batch)
    measured = self._window is not None
    if measured and on and "selection/variance_reduction" in metrics:
      self._window[2].append(metrics["selection/variance_reduction"])
    if c.window_ends(step + 1):
      if not measured:  # a hold window: nothing to measure
        c.window_done(controller_lib.Window(on=on, steps=c.window_steps,
                                            seconds=None))
        return state, metrics
      jax.block_until_ready(state)
      seconds = time.perf_counter() - self._window[0]
      loss = self._probe_loss(state)
      taus = [float(t) for t in jax.device_get(self._window[2])]
      c.window_done(controller_lib.Window(
          on=on, steps=c.window_steps, seconds=seconds,
          progress=self._window[1] - loss,
          tau=float(np.mean(taus)) if taus else None))
      # The next window starts from this probe loss if it is a probe's too.
      self._window = (time.perf_counter(), loss, []) if c.probing else None
    return state, metrics

  def scalars(self) -> dict[str, float]:
    out = self.controller.scalars()
    if "selection/controller/arm" in out and self._ratios:
      out["selection/controller/ratio"] = self._ratios[
          int(out["selection/controller/arm"])]
    return out


def window_steps(section, total_steps: int) -> int:
  """`section.controller_window`, or (0) a 50th of the run, at least 10."""
  return int(section.controller_window) or max(10, total_steps // 50)


def _controlled(section) -> bool:
  """Whether `config.selection` runs under the break-even controller."""
  return section.scorer != "none" and section.controller != "off"


def held_out_ids(config, source):
  """The training-split indices that training must skip (the probe's, when
  `config.selection.controller_probe` is "heldout"), or None."""
  section = config.selection
  if not _controlled(section) or section.controller_probe != "heldout":
    return None
  return controller_lib.probe_ids(source.num_examples("train"),
                                  config.batch_size, config.seed)


def make_switch(config, model, source, optimizer, train_on: Callable,
                train_off: Callable | None, put_batch: Callable,
                start_step: int = 0, train_cheaper: tuple[Callable, ...] = ()
                ) -> SelectionSwitch | None:
  """The switch `config.selection` asks for (None when selection or its
  controller is off). `train_on`/`train_off`: the selecting and plain
  programs; `train_cheaper`: the selecting ones at
  `config.selection.controller_ratios` (Steps.train_cheaper); `put_batch`
  places the probe batch on the mesh (Steps.eval_batch); the controller
  starts at the later of the selection's warm-up and `start_step` (a
  resumed run's step)."""
  section = config.selection
  if not _controlled(section):
    return None
  rule = controller_lib.rule_for(section.method, section.controller)
  probe_fn, probe_batch = controller_lib.make_probe(
      model, source, config.batch_size, config.seed)
  probe_batch = put_batch(probe_batch)
  probe = jax.jit(lambda state: probe_fn(
      optimizer.eval_params(state.opt_state, state.params), probe_batch))
  c = controller_lib.BreakEven(
      window_steps=window_steps(section, config.total_steps), rule=rule,
      start_step=max(int(section.warmup_steps), start_step),
      margin=float(section.controller_margin),
      confirm=int(section.controller_confirm),
      z=float(section.controller_z), arms=1 + len(train_cheaper))
  clip = (float(section.controller_probe_clip)
          * float(np.log(source.spec.num_classes))
          if section.controller_probe_clip else None)
  ratios = (float(section.ratio),) + tuple(
      float(r) for r in section.controller_ratios)
  return SelectionSwitch(c, train_on, train_off, probe,
                         float(section.controller_probe_trim), clip,
                         train_cheaper=train_cheaper, ratios=ratios)
