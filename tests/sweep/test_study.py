"""Sweeps end to end: trials as runs, pruning, the report, and a sweep
killed with SIGKILL that continues without repeating a finished trial."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest

from accel import sweep
from accel.errors import ConfigError
from accel.sweep import study as study_lib
from accel.sweep import summary
from accel.train import config as config_lib

pytestmark = pytest.mark.slow  # end-to-end: runs and a binary

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
STATES = optuna.trial.TrialState


def _tiny(tiny_config):
  """The shared tiny config (tests/conftest.py) without dropout, so that
  trials at different rates give different losses."""
  c = tiny_config()
  c.model.dropout = 0.0
  return c


def _sweep(**overrides):
  kwargs = dict(space={"optim.learning_rate": sweep.LogUniform(1e-7, 1e-1)},
                metric="loss", direction="minimize", trials=5,
                sampler="random",
                pruner="successive_halving",
                pruner_options={"reduction_factor": 2})
  kwargs.update(overrides)
  return sweep.Sweep(**kwargs)


def test_trials_are_runs_and_the_report_names_the_best(tmp_path, tiny_config):
  config, found, workdir = _tiny(tiny_config), _sweep(), str(tmp_path / "w")
  study = sweep.run(config, found, workdir,
                    identity=sweep.sweep_identity(found, config),
                    progress_bar=False)
  trials = study.get_trials()
  assert study_lib.progress(study).finished == 5 == len(trials)
  states = [t.state for t in trials]
  assert STATES.PRUNED in states and STATES.COMPLETE in states
  for t in trials:
    run_dir = os.path.join(workdir, t.user_attrs["workdir"])
    assert os.path.isdir(os.path.join(run_dir, "checkpoints"))
    steps = 4 if t.state == STATES.PRUNED else 8
    assert t.user_attrs["steps"] == steps
    assert max(t.intermediate_values) == steps
  text = summary.write(study, workdir, "configs/x.py:debug", [])
  best = study.best_trial
  lr = summary.values(best)["optim.learning_rate"]
  assert f"--config.optim.learning_rate={lr!r}" in text
  assert text.count("\n| ") == 1 + 5  # header and one row a trial
  for name in summary.PLOTS:
    assert os.path.exists(os.path.join(workdir, name)), text


def test_more_trials_later_continue_the_same_study(tmp_path, tiny_config):
  config, found = _tiny(tiny_config), _sweep(pruner="none")
  workdir = str(tmp_path / "w")
  ident = sweep.sweep_identity(found, config)
  first = sweep.run(config, found, workdir, identity=ident, trials=2,
                    progress_bar=False)
  params = [t.params for t in first.get_trials()]
  again = sweep.run(config, found, workdir, identity=ident, trials=3,
                    progress_bar=False)
  trials = again.get_trials()
  assert len(trials) == 3 and [t.params for t in trials[:2]] == params
  assert trials[2].params not in params  # the sampler did not start over


def test_a_workdir_holding_another_sweep_is_refused(tmp_path, tiny_config):
  config, workdir = _tiny(tiny_config), str(tmp_path / "w")
  found = _sweep()
  with study_lib.exclusive(workdir):
    study_lib.open_study(workdir, found,
                         sweep.sweep_identity(found, config))
  other = _sweep(metric="accuracy", direction="maximize")
  with pytest.raises(ConfigError, match=r"different sweep(.|\n)*metric: "
                     r"'loss' there, 'accuracy' now"):
    with study_lib.exclusive(workdir):
      study_lib.open_study(workdir, other, sweep.sweep_identity(other, config))


def test_a_second_sweep_process_in_the_same_workdir_is_refused(tmp_path):
  with study_lib.exclusive(str(tmp_path)):
    with pytest.raises(ConfigError, match="Another sweep process"):
      with study_lib.exclusive(str(tmp_path)):
        pass


def test_pruning_without_evaluations_fails_before_training(
    tmp_path, tiny_config):
  config = _tiny(tiny_config)
  config.eval_every = 0
  with pytest.raises(ConfigError, match="eval_every is 0"):
    sweep.run(config, _sweep(), str(tmp_path / "w"), identity={},
              progress_bar=False)
  with pytest.raises(ConfigError, match="no key 'learning_rat'"):
    sweep.run(_tiny(tiny_config), _sweep(space={
        "optim.learning_rat": sweep.LogUniform(1e-4, 1e-2)}),
              str(tmp_path / "w"), identity={}, progress_bar=False)


def test_a_diverged_trial_is_a_finished_failure_not_a_crash(
    tmp_path, tiny_config):
  config, workdir = _tiny(tiny_config), str(tmp_path / "w")
  config.optim = config_lib.optim_section("sgd", momentum=0.0)
  found = _sweep(space={"optim.learning_rate": sweep.Categorical((1e30,))},
                 trials=1, pruner="none")
  study = sweep.run(config, found, workdir,
                    identity=sweep.sweep_identity(found, config),
                    progress_bar=False)
  (t,) = study.get_trials()
  assert t.state == STATES.FAIL and "diverged" in t.user_attrs["error"]
  assert "| diverged |" in summary.table(study)


def _states(workdir):
  """The trials' states, read straight from the SQLite file (cheap enough
  to poll often); [] before the study exists."""
  path = os.path.join(workdir, "study.db")
  if not os.path.exists(path):
    return []
  try:
    with sqlite3.connect(path, timeout=1) as db:
      return [r[0] for r in db.execute(
          "SELECT state FROM trials ORDER BY trial_id")]
  except sqlite3.Error:  # being created
    return []


def test_sigkill_mid_sweep_then_the_same_command_finishes_it(tmp_path,
                                                            one_device_env):
  workdir = str(tmp_path / "sweep")
  command = [sys.executable, os.path.join(REPO, "launch", "sweep.py"),
             "--config", os.path.join(REPO, "configs", "mnist1d_cnn.py:debug"),
             "--sweep", os.path.join(REPO, "configs", "sweeps", "debug.py"),
             "--workdir", workdir,
             # longer trials than the debug config's 20 steps, so that the
             # kill lands inside one even with a warm compilation cache and
             # one device's fast steps (about 1 ms each on a Zen 4)
             "--config.total_steps=1000", "--config.eval_every=100",
             "--config.checkpoint_every=100",
             # a narrower CNN: half the step time, the same sweep semantics
             "--config.model.channels=(16,16)"]
  proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=one_device_env)
  deadline = time.time() + 600
  try:
    while time.time() < deadline and proc.poll() is None:
      states = _states(workdir)
      done = sum(s in ("COMPLETE", "PRUNED") for s in states)
      # Kill once a running trial after a finished one has trained to its
      # first checkpoint (every 100 steps: few saves keep the trials short),
      # so that the second run must resume it from there. The seeded sampler
      # gives trial 1 a rate that survives the first evaluation, so it trains
      # 900 steps past that checkpoint; the later trials are pruned at their
      # first evaluation, right after it, too soon to be caught (a CI machine
      # once missed trial 2's few milliseconds).
      running = os.path.join(workdir, "trials", str(len(states) - 1),
                             "checkpoints", "100")
      if done >= 1 and states[-1] == "RUNNING" and os.path.isdir(running):
        os.kill(proc.pid, signal.SIGKILL)
        break
      time.sleep(0.02)
  finally:
    if proc.poll() is None:
      proc.kill()
    proc.wait()
  assert proc.returncode == -signal.SIGKILL, (
      "the sweep ended before it could be killed")
  before = {t.number: (t.params, t.state)
            for t in sweep.load_study(workdir).get_trials()
            if study_lib.is_finished(t)}
  metrics = {n: os.path.getmtime(os.path.join(workdir, "trials", str(n),
                                              "final_metrics.json"))
             for n in before}

  again = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                         timeout=600, env=one_device_env)
  assert again.returncode == 0, again.stderr[-2000:]
  assert "Resuming interrupted trial" in again.stdout
  resumed_at = re.search(r"Resuming from the checkpoint at step (\d+)",
                         again.stdout)
  assert resumed_at and int(resumed_at.group(1)) in range(100, 1000, 100)
  trials = sweep.load_study(workdir).get_trials()
  done = [t for t in trials if study_lib.is_finished(t)]
  assert len(done) == 6  # the sweep's trials, none repeated
  assert any(t.state == STATES.PRUNED for t in done)
  for number, (params, state) in before.items():  # untouched
    assert (trials[number].params, trials[number].state) == (params, state)
    assert os.path.getmtime(os.path.join(
        workdir, "trials", str(number), "final_metrics.json")) == \
        metrics[number]
  (killed,) = [t for t in trials if t.state == STATES.FAIL]
  (resumed,) = [t for t in trials if t.user_attrs.get("resumes") ==
                killed.number]
  assert resumed.params == killed.params and study_lib.is_finished(resumed)
  assert resumed.user_attrs["workdir"] == f"trials/{killed.number}"
  assert "Best: trial" in again.stdout


def test_the_grid_sampler_walks_each_point_once(tmp_path, tiny_config):
  config, workdir = _tiny(tiny_config), str(tmp_path / "w")
  found = _sweep(space={"optim.learning_rate": sweep.LogUniform(
      1e-3, 1e-1, grid=(1e-3, 1e-2, 1e-1))}, sampler="grid", pruner="none",
                 trials=10)
  study = sweep.run(config, found, workdir,
                    identity=sweep.sweep_identity(found, config),
                    progress_bar=False)
  lrs = sorted(t.params["optim.learning_rate"] for t in study.get_trials())
  assert lrs == [1e-3, 1e-2, 1e-1]


def test_a_changed_base_config_is_named_key_by_key(tmp_path, tiny_config):
  workdir, found = str(tmp_path / "w"), _sweep()
  with study_lib.exclusive(workdir):
    study_lib.open_study(workdir, found,
                         sweep.sweep_identity(found, _tiny(tiny_config)))
  changed = _tiny(tiny_config)
  changed.batch_size = 32
  with pytest.raises(ConfigError, match=r"different sweep.*\n  config"
                     r"\.batch_size: 16 there, 32 now\nUse a new"):
    with study_lib.exclusive(workdir):
      study_lib.open_study(workdir, found,
                           sweep.sweep_identity(found, changed))
