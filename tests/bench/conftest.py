"""Fakes the suite and report tests share: trials whose accuracy rises at a
speed set by the method and learning rate, a two-method suite, and a
clock the fake trials advance."""

import types

import ml_collections
import pytest

from accel.bench import trial as time_to_target
from accel.bench import trial_configs


def _fake_trial(config, *, eval_every, max_train_s=None):
  """Accuracy rises linearly at a speed set by the method and lr; a
  "fast" step takes 15 ms, a "slow" one 10."""
  speed = {"fast": 2.0, "slow": 1.0}[config.optim.name]
  speed *= 0.5 if config.optim.learning_rate < 5e-3 else 1.0
  # A linear decay (the workload's schedule is cosine) is a quarter faster.
  speed *= 1.25 if config.optim.get("schedule") == "linear" else 1.0
  curve = []
  for step in range(eval_every, config.total_steps + 1, eval_every):
    acc = min(1.0, speed * step / config.total_steps)
    curve.append({"step": step, "train_s": 0.01 * step * (
        1.5 if config.optim.name == "fast" else 1.0), "accuracy": acc,
                  "loss": 1 - acc})
  return time_to_target.cut({
      "curve": curve, "final_accuracy": curve[-1]["accuracy"],
      "final_loss": curve[-1]["loss"],
      "best_accuracy": curve[-1]["accuracy"], "compile_s": 0.0,
      "steps": curve[-1]["step"],
      "step_ms": 15.0 if config.optim.name == "fast" else 10.0,
      **time_to_target.first_reach(curve, None)}, max_train_s)


def _name_fake_methods(monkeypatch):
  """The fake keys on the method: nadamw trials become "fast", the others
  "slow"."""
  real_trial_config = trial_configs.trial_config

  def trial_config(w, m, lr, seed):
    c = real_trial_config(w, m, lr, seed)
    c.optim.name = "fast" if m.optim.name == "nadamw" else "slow"
    return c
  monkeypatch.setattr(trial_configs, "trial_config", trial_config)


def _fake_suite(learning_rates):
  """A workload whose target is 90% of the baseline's final accuracy, and
  two methods ("slow" the baseline, "fast" twice as fast) on one grid."""
  workload = ml_collections.ConfigDict(dict(
      config="mnist1d_mlp", eval_every=10, target_fraction=0.9,
      overrides={"total_steps": 100}))
  methods = ml_collections.ConfigDict({
      "slow": dict(optim={"name": "adamw"}, learning_rates=learning_rates),
      "fast": dict(optim={"name": "nadamw"}, learning_rates=learning_rates)})
  return workload, methods


class _Clock:
  """A clock the fake trials advance: one minute per trial."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def _counting_fake(clock, calls):
  def fake(config, *, eval_every, max_train_s=None):
    calls.append((config.optim.name, config.optim.learning_rate,
                  config.seed))
    clock.now += 60.0
    return _fake_trial(config, eval_every=eval_every,
                       max_train_s=max_train_s)
  return fake


def _record_trials(monkeypatch, what):
  """Makes the suite run the fake trial, and returns the list that
  `what(config)` of every trial it runs is appended to."""
  from accel.bench import suite  # pylint: disable=g-import-not-at-top
  ran = []

  def trial(config, *, eval_every, max_train_s=None):
    ran.append(what(config))
    return _fake_trial(config, eval_every=eval_every,
                       max_train_s=max_train_s)
  monkeypatch.setattr(suite.trial_lib, "run_trial", trial)
  return ran


def _name_lr_seed(config):
  return (config.optim.name, config.optim.learning_rate, config.seed)


@pytest.fixture
def fakes(monkeypatch):
  """The fakes above; `name_methods()` patches the trial configs,
  `record(what=...)` the suite's trials."""
  return types.SimpleNamespace(
      trial=_fake_trial, name_methods=lambda: _name_fake_methods(monkeypatch),
      suite=_fake_suite, Clock=_Clock, counting=_counting_fake,
      record=lambda what=_name_lr_seed: _record_trials(monkeypatch, what))
