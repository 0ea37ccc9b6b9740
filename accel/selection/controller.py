"""The break-even controller: batch selection on only while it pays.

Selection costs time every step (a scoring pass over the candidates, the
candidates' transfer, the selection itself) and buys something only some of
the time. `BreakEven` decides, on the host, window by window
(`window_steps` steps), whether the next window selects or trains on plain
uniform batches (accel.selection.Selector.passive_copy), from what it
measures online:

  cost     the train seconds per step of selecting windows over those of
           plain windows (the scoring share of the step, measured as the
           user pays it);
  benefit  rule "variance" (importance sampling): Katharopoulos & Fleuret's
           tau, the factor by which the draw shrinks the gradient's second
           moment (accel.selection.select.variance_reduction); it pays
           while tau > cost x (1 + margin), their switch-on rule with the
           measured cost in place of a FLOP count;
           rule "progress" (top-k, rank, sample, and noise filtering):
           progress per second against uniform batches, the decrease of a
           probe loss over a window divided by its train seconds; it pays
           while the selecting windows' rate beats the plain windows' by
           the margin and by `z` standard errors. The standard error comes
           from the probe itself: the two windows of each mode differ only
           by noise (and the trend, which makes the test stricter), so
           their spread estimates the noise of one window's rate. Late in a
           run a probe loss barely moves, and a sign-only comparison of two
           noisy rates would call "pays" half the time.

The probe loss is the eval-mode loss of a fixed set of training examples,
averaged over the lowest (1 - `trim`) share of their losses: a corrupted
label sits in the high tail, so fitting it earns no progress. Or (`clip`)
each loss capped at a multiple of the chance level log(C) before the mean:
a label the model disagrees with counts as "wrong" however confident the
disagreement, while the hard, correctly labelled examples that a trim
would leave out still count (a filter that gives up on them shows its
cost). Capping suits a probe held out of training, where fitting a
corrupted label cannot pass for progress.

Each decision rests on a probe of four windows in ABBA order (selecting,
plain, plain, selecting; the next probe BAAB), so a loss that falls more
slowly as training goes on favours neither. The decision then holds for
`hold_windows` windows; each time a probe confirms the last decision the
hold doubles, up to `max_hold_windows`, so a run where selection never
pays spends a shrinking share of its steps probing it. Only a probe's windows
are measured (their seconds and the probe loss at their ends); a hold
window runs without a probe pass or a wait for the device.

Switching selection on takes `confirm` probes in a row that find it pays
(the next probe follows at once while one is pending): a single probe's
verdict is noisy (four windows of a probe loss), a false "on" costs the
scoring pass on every step of the hold, and a false "off" only the benefit
until the next probe. With independent probes that err with probability p,
a false switch-on then happens with probability p**confirm.

Cheaper selection before none (`arms` > 1): arm 0 is the selecting program
as configured; arms 1, 2, ... are cheaper ones (accel.selection.Selector.
with_ratio: fewer candidates, so a cheaper scoring pass). A probe compares
the current arm with plain windows; when it does not pay and a cheaper arm
is left, the next probe follows at once with that arm (its own confirm
probes before it goes on); when the cheapest does not pay either, selection
goes off for the hold and the probe after it starts again from arm 0. An
arm that pays stays until a probe finds that it no longer does.
"""

from __future__ import annotations

import dataclasses
import jax
import numpy as np

from accel.errors import ConfigError
from accel.selection import scorers

RULES = ("progress", "variance")
# Where the probe's examples come from: the training split as trained on,
# or a slice of it held out of training.
PROBES = ("train", "heldout")
# ABBA: a linear trend in the loss's rate of decrease cancels.
_PROBE = (True, False, False, True)
# Probes whose within-mode spreads make the progress rule's standard error.
_POOLED = 4


@dataclasses.dataclass
class Window:
  on: bool
  steps: int
  seconds: float | None  # None: a hold window, which nothing measures
  progress: float | None = None  # probe-loss decrease over the window
  tau: float | None = None       # mean variance reduction (selecting)


@dataclasses.dataclass
class Decision:
  step: int
  on: bool
  cost: float           # s/step selecting over s/step plain
  benefit: float        # tau (variance) or progress rate ratio (progress)
  rate_on: float | None = None
  rate_off: float | None = None
  z: float | None = None  # (rate_on - rate_off) over its standard error
  pays: bool | None = None  # this probe's verdict (on needs confirm in a row)
  arm: int = 0          # the selecting program the probe compared


class BreakEven:
  """Which windows select (module doc). Drive it with `selecting(step)`
  before each step and `window_done(...)` after each `window_steps` steps
  from `start_step` on; it selects nothing before `start_step`."""

  def __init__(self, *, window_steps: int, rule: str, start_step: int = 0,
               margin: float = 0.03, hold_windows: int = 8,
               max_hold_windows: int = 64, confirm: int = 2,
               z: float = 0.5, arms: int = 1):
    if rule not in RULES:
      raise ConfigError(f"Unknown controller rule {rule!r}; expected one of "
                        f"{RULES}.")
    if (window_steps < 1 or hold_windows < 1 or margin < 0 or confirm < 1
        or z < 0 or arms < 1):
      raise ConfigError(
          f"The controller needs window_steps >= 1, hold_windows >= 1, "
          f"margin >= 0, confirm >= 1, z >= 0 and arms >= 1; got "
          f"{window_steps}, {hold_windows}, {margin}, {confirm}, {z} and "
          f"{arms}.")
    self.window_steps, self.rule = window_steps, rule
    self.start_step, self.margin, self.z = start_step, margin, z
    self.hold_windows, self.max_hold = hold_windows, max_hold_windows
    self._hold = hold_windows
    self.confirm = confirm
    self.arms = arms
    self.arm = 0          # the selecting program of the windows to come
    self._final = None    # `on` of the last decision that set a hold
    self._streak = 0      # paying verdicts in a row
    self._probes = 0
    self._plan = self._next_probe()
    self._probe: list[Window] = []
    self._variances: list[float] = []  # recent probes' (_rate_variances)
    self._windows = 0
    self.decisions: list[Decision] = []

  def _next_probe(self) -> list[tuple[bool, bool]]:
    """(selecting, part of a probe) per window: ABBA, then BAAB, ..."""
    flip = self._probes % 2 == 1
    self._probes += 1
    return [(m != flip, True) for m in _PROBE]

  @property
  def on(self) -> bool:
    """The mode of the window under way (or next)."""
    return self._plan[0][0]

  @property
  def probing(self) -> bool:
    """Whether the window under way (or next) is part of a probe: only
    those need their seconds and probe losses (a hold window's go unused,
    so the switch leaves them unmeasured and pays no probe pass)."""
    return self._plan[0][1]

  def selecting(self, step: int) -> bool:
    return step >= self.start_step and self.on

  def window_ends(self, done: int) -> bool:
    """Whether the step count `done` closes a window."""
    return (done > self.start_step
            and (done - self.start_step) % self.window_steps == 0)

  def window_done(self, window: Window) -> Decision | None:
    """Records the window just finished (its mode must be `on`'s); returns
    the decision when it completed a probe."""
    on, probing = self._plan.pop(0)
    if window.on != on:
      raise ValueError(f"a {'selecting' if window.on else 'plain'} window "
                       "was reported where the plan had the other.")
    self._windows += 1
    decision = None
    if probing:
      self._probe.append(window)
      if len(self._probe) == len(_PROBE):
        decision = self._decide(self._probe)
        self._probe = []
        self._plan = [(decision.on, False)] * self._schedule(decision)
    if not self._plan:
      self._plan = self._next_probe()
    return decision

  def _decide(self, windows: list[Window]) -> Decision:
    on = [w for w in windows if w.on]
    off = [w for w in windows if not w.on]
    per_step = lambda ws: (sum(w.seconds for w in ws)
                           / max(sum(w.steps for w in ws), 1))
    cost = per_step(on) / max(per_step(off), 1e-12)
    step = self.start_step + self._windows * self.window_steps
    if self.rule == "variance":
      taus = [w.tau for w in on if w.tau is not None]
      benefit = float(np.mean(taus)) if taus else 1.0
      d = Decision(step=step, on=False, cost=cost, benefit=benefit,
                   pays=benefit > cost * (1.0 + self.margin))
    else:
      r_on, r_off = _rate(on), _rate(off)
      # The last `_POOLED` probes' estimates, pooled: one probe's two
      # pairs give a noisy standard error, and the noise changes slowly.
      self._variances = (self._variances + _rate_variances(windows))[
          -2 * _POOLED:]
      # Var(mean of the 2 on) + Var(mean of the 2 off) = variance.
      se = float(np.sqrt(np.mean(self._variances)))
      diff = r_on - r_off
      z = (diff / se if se > 0 else 0.0 if diff == 0
           else float(np.copysign(np.inf, diff)))
      pays = bool(r_on > 0 and diff > self.margin * abs(r_off)
                  and diff > self.z * se)
      ratio = (r_on / r_off if r_off > 0
               else float("inf") if r_on > 0 else 0.0)
      d = Decision(step=step, on=False, cost=cost, benefit=ratio,
                   rate_on=r_on, rate_off=r_off, z=float(z), pays=pays)
    d.arm = self.arm
    was_on = bool(self.decisions) and self.decisions[-1].on
    self._streak = self._streak + 1 if d.pays else 0
    d.on = d.pays and (was_on or self._streak >= self.confirm)
    self.decisions.append(d)
    return d

  def _schedule(self, d: Decision) -> int:
    """The windows `d` holds before the next probe, with the hold and the
    arm updated. A paying probe that awaits its confirmation, or an arm
    that does not pay where a cheaper one is left, holds none (the next
    probe follows at once, on the cheaper arm) and leaves the hold as it
    is; otherwise a decision that confirms the last one that set a hold
    doubles the hold, and one that does not pay sends the probe after it
    back to arm 0."""
    if d.pays and not d.on:
      return 0
    if not d.pays and self.arm + 1 < self.arms:
      self.arm += 1
      return 0
    if self._final is not None and self._final == d.on:
      self._hold = min(2 * self._hold, self.max_hold)
    else:
      self._hold = self.hold_windows
    self._final = d.on
    if not d.pays:
      self.arm = 0
    return self._hold

  def scalars(self) -> dict[str, float]:
    """The latest decision, for TensorBoard (empty before the first)."""
    if not self.decisions:
      return {}
    d = self.decisions[-1]
    out = {"selection/controller/on": float(d.on),
           "selection/controller/pays": float(bool(d.pays)),
           "selection/controller/cost": d.cost,
           "selection/controller/benefit": d.benefit}
    if self.arms > 1:
      out["selection/controller/arm"] = float(d.arm)
    if d.rate_on is not None:
      out["selection/controller/progress_per_s_selecting"] = d.rate_on
      out["selection/controller/progress_per_s_plain"] = d.rate_off
      out["selection/controller/z"] = d.z
    return out


def _rate(windows: list[Window]) -> float:
  """Probe-loss decrease per train second over `windows`."""
  return (sum(w.progress or 0.0 for w in windows)
          / max(sum(w.seconds for w in windows), 1e-12))


def _rate_variances(windows: list[Window]) -> list[float]:
  """Estimates of one window's rate variance from a probe's pairs of
  same-mode windows: (rate_a - rate_b)**2 / 2 for each pair."""
  out = []
  for mode in (True, False):
    r = [_rate([w]) for w in windows if w.on == mode]
    if len(r) == 2:
      out.append((r[0] - r[1]) ** 2 / 2)
  return out


def trimmed_mean(losses_P: np.ndarray, trim: float,
                 clip: float | None = None) -> float:
  """The mean of the lowest (1 - trim) share of `losses_P` (at least one),
  each loss first capped at `clip` (None: not capped)."""
  x = np.sort(np.asarray(losses_P, np.float64))
  if clip is not None:
    x = np.minimum(x, clip)
  keep = max(1, int(round(len(x) * (1.0 - trim))))
  return float(x[:keep].mean())


def probe_ids(num_train: int, size: int, seed: int) -> np.ndarray:
  """The probe's `size` training-split indices, fixed by `seed` (sorted)."""
  return np.sort(np.random.default_rng([seed, 0x9B0BE]).choice(
      num_train, min(size, num_train), replace=False)).astype(np.int32)


def make_probe(model, source, size: int, seed: int):
  """(a jitted `params -> per-example eval-mode losses [size]`, the probe
  batch): `size` training examples fixed by `seed` (`probe_ids`)."""
  batch = source.fetch("train", probe_ids(source.num_examples("train"),
                                          size, seed))
  loss = scorers.loss_scorer(model)
  return jax.jit(lambda params, b: loss(params, b)), batch


def rule_for(method: str, rule: str) -> str:
  """The rule a config's `controller` names ("auto": variance for
  importance sampling, progress otherwise)."""
  if rule == "auto":
    return "variance" if method == "importance" else "progress"
  if rule not in RULES:
    raise ConfigError(f"config.selection.controller is 'auto', 'off' or one "
                      f"of {RULES}; got {rule!r}.")
  return rule
