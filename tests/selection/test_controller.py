"""The break-even controller's decisions on synthetic cost and benefit
traces, and the switch in a training run."""

import os

import numpy as np
import pytest

from accel import train
from accel.selection import controller as ctl

W = 50


def _run(c, windows, *, cost=1.0, progress, tau=None):
  """Drives `c` for `windows` windows. `progress(step, on)`: the probe-loss
  decrease of one step; `tau(step)`: a selecting step's variance
  reduction; a plain step takes 1 s, a selecting one `cost` s. Returns the
  mode of each window and the seconds spent."""
  modes, seconds = [], 0.0
  for w in range(windows):
    start = c.start_step + w * W
    on = c.selecting(start)
    assert all(c.selecting(start + i) == on for i in range(W))
    assert c.window_ends(start + W) and not c.window_ends(start + W - 1)
    secs = W * (cost if on else 1.0)
    seconds += secs
    c.window_done(ctl.Window(
        on=on, steps=W, seconds=secs,
        progress=sum(progress(start + i, on) for i in range(W)),
        tau=None if tau is None or not on else tau(start)))
    modes.append(on)
  return modes, seconds


def _decelerating(gain=1.0):
  """Per-step progress falling linearly with time; selecting multiplies it
  by `gain` (a function of the step, or a number)."""
  g = gain if callable(gain) else (lambda step: gain)
  return lambda step, on: (1.0 - step / 20000) * (g(step) if on else 1.0)


def test_nothing_pays_selection_goes_off_and_probes_less_and_less():
  c = ctl.BreakEven(window_steps=W, rule="progress")
  modes, seconds = _run(c, 120, cost=1.4, progress=_decelerating())
  assert c.decisions and not any(d.on for d in c.decisions)
  # Each probe that confirms "off" doubles the hold: 8, 16, 32, 64 windows.
  gaps = np.diff([d.step for d in c.decisions])
  assert list(gaps) == [W * (4 + h) for h in (8, 16, 32)]
  # Only the probes' selecting windows cost extra: 2 of every probe's 4
  # (120 windows hold 4 probes and their holds of 8, 16, 32 and 56).
  assert len(c.decisions) == 4 and sum(modes) == 8
  assert seconds / (120 * W) - 1 == pytest.approx(0.4 * sum(modes) / 120)


def test_selection_that_pays_stays_on():
  c = ctl.BreakEven(window_steps=W, rule="progress", start_step=100)
  assert not c.selecting(99)
  modes, _ = _run(c, 40, cost=1.3, progress=_decelerating(2.0))
  # The first paying probe waits for a second (run at once) to switch on.
  assert all(d.pays for d in c.decisions)
  assert [d.on for d in c.decisions[:2]] == [False, True]
  assert c.decisions[1].step == c.decisions[0].step + 4 * W
  assert all(d.on for d in c.decisions[1:])
  # Only the probes' plain windows train without selection: 2 of every 4.
  assert len(modes) - sum(modes) == 2 * len(c.decisions)
  d = c.decisions[0]
  assert d.cost == pytest.approx(1.3)
  assert d.rate_on / d.rate_off == pytest.approx(2.0 / 1.3, rel=1e-6)


def test_a_trend_in_the_loss_does_not_pass_for_a_benefit():
  # ABBA: with selection buying nothing and costing nothing, the falling
  # rate favours neither mode, and the margin keeps selection off.
  c = ctl.BreakEven(window_steps=W, rule="progress")
  _run(c, 30, cost=1.0, progress=_decelerating(1.0))
  assert not any(d.on for d in c.decisions)
  assert all(d.rate_on == pytest.approx(d.rate_off)
             for d in c.decisions)


def test_a_benefit_that_appears_later_switches_selection_on():
  c = ctl.BreakEven(window_steps=W, rule="progress")
  later = lambda step: 1.0 if step < 1000 else 3.0
  _run(c, 60, cost=1.2, progress=_decelerating(later))
  ons = [d.on for d in c.decisions]
  assert not ons[0] and ons[-1]
  first_on = next(d for d in c.decisions if d.on)
  assert first_on.step > 1000


@pytest.mark.parametrize("tau,cost,on", [(2.0, 1.3, True), (1.1, 1.3, False),
                                         (1.3, 1.3, False)])
def test_variance_rule_compares_tau_with_the_measured_cost(tau, cost, on):
  c = ctl.BreakEven(window_steps=W, rule="variance")
  _run(c, 20, cost=cost, progress=lambda s, o: 0.0, tau=lambda s: tau)
  assert [d.pays for d in c.decisions] == [on] * len(c.decisions)
  assert [d.on for d in c.decisions] == [False] + [on] * (
      len(c.decisions) - 1)
  assert c.decisions[0].benefit == pytest.approx(tau)
  assert c.scalars()["selection/controller/on"] == float(on)


def _noisy(gain, rng, sd=3.0):
  """Per-step progress about 1 (`gain` times that while selecting) plus
  noise of `sd` per step: a window's rate has about 40% noise."""
  return lambda step, on: ((1.0 - step / 200000) * (gain if on else 1.0)
                           + rng.normal(0.0, sd))


def _on_share(z, gain, seeds=range(10)):
  """The mean share of selecting windows after the first 100, by seed."""
  shares = []
  for seed in seeds:
    c = ctl.BreakEven(window_steps=W, rule="progress", z=z)
    modes, _ = _run(c, 300, progress=_noisy(gain,
                                            np.random.default_rng(seed)))
    shares.append(np.mean(modes[100:]))
  return float(np.mean(shares))


def test_noise_alone_rarely_switches_selection_on():
  # Equal rates: a sign-only comparison (z = 0) switches on after two
  # lucky probes; one standard error of the probes' own noise keeps
  # selection off but for the probes themselves.
  assert _on_share(z=1.0, gain=1.0) < 0.07
  assert _on_share(z=0.0, gain=1.0) > 0.12
  # A gain the noise cannot hide still switches it on.
  assert _on_share(z=1.0, gain=2.0) > 0.85


def test_switching_on_takes_agreeing_probes():
  # A noisy benefit: each probe's verdict is "pays" with probability 0.3
  # while selection buys nothing. One probe switches on 30% of the time;
  # two in a row about 9% (p**2), so selection is on far less often.
  lucky = {}

  def progress(step, on):
    probe = step // (4 * W)
    if probe not in lucky:
      lucky[probe] = rng.random() < 0.3
    return 2.0 if on and lucky[probe] else 1.0
  share = {}
  for confirm in (1, 2):
    rng = np.random.default_rng(0)
    lucky.clear()
    c = ctl.BreakEven(window_steps=W, rule="progress", hold_windows=2,
                      max_hold_windows=2, confirm=confirm)
    _run(c, 2000, cost=1.0, progress=progress)
    ons = [d.on for d in c.decisions]
    share[confirm] = (np.mean(ons), np.mean([d.pays for d in c.decisions]))
    if confirm == 2:
      # Every switch-on follows a paying probe that switched nothing on.
      for prev, d in zip(c.decisions, c.decisions[1:]):
        if d.on and not prev.on:
          assert prev.pays
  assert share[1][0] == pytest.approx(share[1][1])
  assert share[2][0] < 0.5 * share[1][0]


def _run_arms(c, windows, *, cost, gain):
  """Drives `c` with per-arm selecting costs `cost[arm]` (s/step; a plain
  step takes 1 s) and a selecting step's progress `gain[arm]` times a plain
  one's (falling with time). Returns each window's arm (None: plain)."""
  arms = []
  for w in range(windows):
    start = c.start_step + w * W
    on, arm = c.selecting(start), c.arm
    rate = lambda step: 1.0 - step / 20000
    c.window_done(ctl.Window(
        on=on, steps=W, seconds=W * (cost[arm] if on else 1.0),
        progress=sum(rate(start + i) * (gain[arm] if on else 1.0)
                     for i in range(W))))
    arms.append(arm if on else None)
  return arms


def test_a_cheaper_arm_that_pays_is_taken_when_the_first_does_not():
  # Arm 0 (say 4x candidates) buys 1.5x the progress a step but costs 2x
  # the time; arm 1 (2x candidates) buys 1.4x for 1.2x the time.
  c = ctl.BreakEven(window_steps=W, rule="progress", arms=2)
  arms = _run_arms(c, 40, cost=(2.0, 1.2), gain=(1.5, 1.4))
  d = c.decisions
  assert [(x.arm, x.pays, x.on) for x in d[:3]] == [
      (0, False, False), (1, True, False), (1, True, True)]
  # Each hand-over and the confirmation follow at once.
  assert [x.step for x in d[:3]] == [4 * W, 8 * W, 12 * W]
  assert all(x.arm == 1 and x.on for x in d[2:])
  # After the first probe, arm 0 never runs again.
  assert set(arms[4:]) == {1, None}
  assert c.scalars()["selection/controller/arm"] == 1.0


def test_when_no_arm_pays_the_hold_doubles_and_probes_restart_at_arm_0():
  c = ctl.BreakEven(window_steps=W, rule="progress", arms=2)
  _run_arms(c, 80, cost=(2.0, 1.4), gain=(1.0, 1.0))
  d = c.decisions
  assert [x.arm for x in d] == [0, 1, 0, 1, 0, 1]
  assert not any(x.on for x in d)
  # Arm 1's probe follows arm 0's at once; then a hold of 8 windows,
  # doubled (16) when the next pair confirms "off".
  assert list(np.diff([x.step for x in d])) == [
      4 * W, (8 + 4) * W, 4 * W, (16 + 4) * W, 4 * W]


def test_one_arm_decides_as_before():
  # arms=1 is the controller without cheaper arms: the same decisions.
  for arms in (1, 2):
    c = ctl.BreakEven(window_steps=W, rule="progress", arms=arms)
    _run_arms(c, 30, cost=(1.3, 1.3), gain=(2.0, 2.0))
    assert [(x.step, x.on, x.arm) for x in c.decisions] == [
        (4 * W, False, 0), (8 * W, True, 0), (20 * W, True, 0),
        (40 * W, True, 0)][:len(c.decisions)]
  with pytest.raises(ValueError, match="arms >= 1; got .* and 0"):
    ctl.BreakEven(window_steps=W, rule="progress", arms=0)


def test_the_switch_runs_the_arm_the_controller_chose():
  from accel.train import control  # pylint: disable=g-import-not-at-top
  c = ctl.BreakEven(window_steps=1, rule="progress", arms=3)
  ran = []
  program = lambda name: lambda state, batch: (ran.append(name) or state, {})
  switch = control.SelectionSwitch(
      c, program("on"), program("off"), lambda state: np.ones(4), 0.0,
      train_cheaper=(program("half"), program("quarter")),
      ratios=(4.0, 2.0, 1.25))
  for i in range(12):  # three probes: nothing pays at any arm
    switch(0.0, None, i)
  assert ran == ["on", "off", "off", "on", "off", "half", "half", "off",
                 "quarter", "off", "off", "quarter"]
  assert [d.arm for d in c.decisions] == [0, 1, 2]
  assert switch.scalars()["selection/controller/ratio"] == 1.25
  with pytest.raises(ValueError, match="controller of 3 arms was given 1 "
                     "selecting programs"):
    control.SelectionSwitch(c, program("on"), program("off"),
                            lambda state: np.ones(4), 0.0)


def test_a_confirm_below_one_is_refused():
  with pytest.raises(ValueError, match="confirm >= 1"):
    ctl.BreakEven(window_steps=W, rule="progress", confirm=0)


def test_trimmed_mean_ignores_the_high_tail():
  losses = np.array([0.1, 0.2, 0.3, 0.4, 9.0])
  assert ctl.trimmed_mean(losses, 0.2) == pytest.approx(0.25)
  assert ctl.trimmed_mean(losses, 0.0) == pytest.approx(np.mean(losses))
  # Capped at 1.0 first: the outlier counts as 1.0, and a trim then drops
  # the highest of the capped losses.
  assert ctl.trimmed_mean(losses, 0.0, clip=1.0) == pytest.approx(2.0 / 5)
  assert ctl.trimmed_mean(losses, 0.2, clip=0.35) == pytest.approx(
      (0.1 + 0.2 + 0.3 + 0.35) / 4)


@pytest.mark.parametrize("trim,clip,progress", [
    (0.0, None, 0.0), (0.25, None, 2.0), (0.0, 50.0, 1.5)])
def test_the_switch_measures_progress_on_the_trimmed_probe(trim, clip,
                                                           progress):
  from accel.train import control  # pylint: disable=g-import-not-at-top
  # Four probe losses: three fall by 1 a step; the fourth, the highest,
  # rises by 3 a step (an example a method gives up on).
  def probe(state):
    return np.array([1.0, 2.0, 3.0, 100.0]) + state * np.array(
        [-1.0, -1.0, -1.0, 3.0])
  seen = []

  class Recorder(ctl.BreakEven):
    def window_done(self, window):
      seen.append(window)
      return super().window_done(window)

  c = Recorder(window_steps=2, rule="progress")
  step = lambda state, batch: (state + 1.0, {})
  switch = control.SelectionSwitch(c, step, step, probe, probe_trim=trim,
                                   probe_clip=clip)
  state = 0.0
  for i in range(2):
    state, _ = switch(state, None, i)
  # Trimmed: the three falling losses, down by 1 each over 2 steps = 2.
  # Untrimmed: their -6 with the fourth's +6 = no progress. Capped at 50:
  # the fourth stays at 50, the three give 6 / 4.
  assert seen[0].progress == pytest.approx(progress)


def test_the_switch_probes_only_the_windows_of_a_probe():
  from accel.train import control  # pylint: disable=g-import-not-at-top
  calls = []

  def probe(state):
    calls.append(state)
    return np.ones(4)  # no progress: selection never pays

  seen = []

  class Recorder(ctl.BreakEven):
    def window_done(self, window):
      seen.append((window, self.probing))
      return super().window_done(window)

  c = Recorder(window_steps=2, rule="progress", hold_windows=8)
  step = lambda state, batch: (state + 1, {})
  switch = control.SelectionSwitch(c, step, step, probe, probe_trim=0.0)
  state = 0
  for i in range(2 * (4 + 8 + 4)):  # a probe, its hold, the next probe
    state, _ = switch(state, None, i)
  assert [d.on for d in c.decisions] == [False, False]
  probing = [p for _, p in seen]
  assert probing == [True] * 4 + [False] * 8 + [True] * 4
  # Hold windows are neither timed nor probed.
  assert all((w.seconds is None) == (not p) for w, p in seen)
  # Each probe: its first window's start and each of its four ends.
  assert calls == [0, 2, 4, 6, 8, 24, 26, 28, 30, 32]


def test_controller_errors_are_named():
  with pytest.raises(ValueError, match="Unknown controller rule 'fast'"):
    ctl.BreakEven(window_steps=W, rule="fast")
  with pytest.raises(ValueError,
                     match="z >= 0 and arms >= 1; got .*, -1.0 and 1"):
    ctl.BreakEven(window_steps=W, rule="progress", z=-1.0)
  with pytest.raises(ValueError, match="controller is 'auto', 'off'"):
    ctl.rule_for("topk", "sometimes")
  assert ctl.rule_for("importance", "auto") == "variance"
  assert ctl.rule_for("topk", "auto") == "progress"


@pytest.mark.slow
def test_a_run_with_the_controller_logs_its_decisions(tmp_path, monkeypatch,
                                                      noisy_config):
  from accel.data import source as source_lib  # pylint: disable=g-import-not-at-top
  c = noisy_config(scorer="loss", method="topk", ratio=4, warmup_steps=10,
                   controller="progress", controller_window=5,
                   controller_probe="heldout", controller_ratios=(2.0,))
  c.total_steps = 80
  excluded = []
  real = source_lib.Source.train_iterator

  def spy(self, *args, exclude=None, **kwargs):
    excluded.append(exclude)
    return real(self, *args, exclude=exclude, **kwargs)
  monkeypatch.setattr(source_lib.Source, "train_iterator", spy)
  workdir = str(tmp_path / "w")
  train.run(c, workdir)
  # The held-out probe's examples are kept out of training.
  n = source_lib.make_source(c.data).num_examples("train")
  np.testing.assert_array_equal(excluded[0],
                                ctl.probe_ids(n, c.batch_size, c.seed))
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  acc = event_accumulator.EventAccumulator(os.path.join(workdir,
                                                        "tensorboard"))
  acc.Reload()
  tags = set(acc.Tags()["scalars"])
  assert {"train/selection/controller/on", "train/selection/controller/cost",
          "train/selection/on", "train/selection/controller/arm",
          "train/selection/controller/ratio"} <= tags
  # Each decision names its arm's candidate ratio: 4x or the cheaper 2x.
  assert {e.value for e in acc.Scalars(
      "train/selection/controller/ratio")} <= {4.0, 2.0}
  # The selecting windows cost a scoring pass: cost above 1.
  assert acc.Scalars("train/selection/controller/cost")[-1].value > 1.0
  # Share of selecting steps per logging window: the probes selected.
  on = [e.value for e in acc.Scalars("train/selection/on")]
  assert max(on) > 0 and all(0 <= v <= 1 for v in on)
