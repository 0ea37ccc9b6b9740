"""A resumable sweep: an Optuna study in a SQLite file, its trials ordinary
runs.

  W/study.db          the Optuna study (RDB storage): every trial, its
                      parameters, reported evaluations and state
  W/trials/<n>/       trial n's run (checkpoints, TensorBoard, metrics)
  W/sweep.lock        held while a sweep process runs here

Running the same command again continues: finished trials (complete,
pruned, or diverged) are never repeated; a trial that was running when the
process died (SIGKILL, a lost machine) is marked failed in the study and
asked again with the same parameters, and its run resumes from its newest
checkpoint in the same `trials/<n>/`. The sampler is seeded with the sweep's
seed plus the number of trials so far, so a continued sweep does not draw
its first trials again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import time
from typing import Any, Callable

import optuna
import tqdm

from accel.errors import ConfigError
from accel.sweep import space as space_lib
from accel.train import config as config_lib
from accel.train import loop

STUDY_NAME = "accel"
TrainFn = Callable[..., dict[str, Any]]

# A trial's user attributes.
WORKDIR, SECONDS, SECONDS_BEFORE, RESUMES, VALUES, ERROR, STEPS = (
    "workdir", "seconds", "seconds_before", "resumes", "values", "error",
    "steps")


@dataclasses.dataclass(frozen=True)
class Progress:
  finished: int
  seconds: float  # training seconds of the finished trials


def storage_url(workdir: str) -> str:
  return "sqlite:///" + os.path.abspath(os.path.join(workdir, "study.db"))


@contextlib.contextmanager
def exclusive(workdir: str):
  """Holds `W/sweep.lock`; a second sweep process in W is refused."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "sweep.lock"), "a+") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise ConfigError(f"Another sweep process is running in {workdir!r}; "
                        "wait for it or use another --workdir.") from None
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def open_study(workdir: str, sweep: space_lib.Sweep, identity: dict[str, str]
               ) -> optuna.Study:
  """The study in `workdir` (made on first use), with the sampler and
  pruner of `sweep`. A workdir holding a different sweep (other space,
  metric, sampler, pruner, seed, or base config) is refused, naming what
  differs. Call within `exclusive(workdir)`."""
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  storage = optuna.storages.RDBStorage(
      storage_url(workdir), engine_kwargs={"connect_args": {"timeout": 60}})
  names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
  study = optuna.create_study(
      storage=storage, study_name=STUDY_NAME, load_if_exists=True,
      direction=sweep.direction, pruner=_pruner(sweep))
  if STUDY_NAME in names:
    diffs = _identity_differences(study.user_attrs.get("identity", {}),
                                  identity)
    if diffs:
      raise ConfigError(
          f"{workdir!r} holds a different sweep, so it cannot continue "
          "there:\n  " + "\n  ".join(diffs) + "\nUse a new --workdir.")
  else:
    study.set_user_attr("identity", identity)
  study.sampler = _sampler(sweep, len(study.trials))
  return study


class _GridSampler(optuna.samplers.GridSampler):
  """Optuna's grid sampler, without its `study.stop()` once the grid is
  walked: that works only inside `study.optimize`, and `run` stops at the
  grid's size itself."""

  def after_trial(self, study, trial, state, values):
    del study, trial, state, values


def _flat(tree, prefix=""):
  if not isinstance(tree, dict):
    return {prefix: tree}
  out = {}
  for k, v in tree.items():
    out.update(_flat(v, f"{prefix}.{k}" if prefix else k))
  return out


def _identity_differences(saved: dict[str, str], now: dict[str, str]
                          ) -> list[str]:
  """One line per differing part; the base config compared key by key."""
  out = []
  for key in sorted(set(saved) | set(now)):
    if saved.get(key) == now.get(key):
      continue
    if key == "config" and key in saved and key in now:
      before, after = (_flat(json.loads(saved[key])),
                       _flat(json.loads(now[key])))
      out += [f"config.{k}: {before.get(k, '(absent)')!r} there, "
              f"{after.get(k, '(absent)')!r} now"
              for k in sorted(set(before) | set(after))
              if before.get(k, "(absent)") != after.get(k, "(absent)")]
    else:
      out.append(f"{key}: {saved.get(key)!r} there, {now.get(key)!r} now")
  return out


def _sampler(sweep: space_lib.Sweep, trials_so_far: int):
  seed = sweep.seed + trials_so_far
  if sweep.sampler == "tpe":
    return optuna.samplers.TPESampler(seed=seed)
  if sweep.sampler == "random":
    return optuna.samplers.RandomSampler(seed=seed)
  if sweep.sampler == "grid":
    return _GridSampler(sweep.grid_space(), seed=seed)
  try:
    import cmaes  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise ConfigError("sweep sampler 'cmaes' needs the cmaes package "
                      "(pip install cmaes); 'tpe' needs nothing more."
                      ) from None
  return optuna.samplers.CmaEsSampler(seed=seed)


def _pruner(sweep: space_lib.Sweep):
  options = dict(sweep.pruner_options)
  try:
    if sweep.pruner == "successive_halving":
      return optuna.pruners.SuccessiveHalvingPruner(**options)
    if sweep.pruner == "hyperband":
      return optuna.pruners.HyperbandPruner(**options)
    if sweep.pruner == "median":
      return optuna.pruners.MedianPruner(**options)
    return optuna.pruners.NopPruner()
  except TypeError as e:
    raise ConfigError(f"sweep pruner_options {options} do not fit the "
                      f"{sweep.pruner} pruner: {e}") from None


def is_finished(t: optuna.trial.FrozenTrial) -> bool:
  """Complete, pruned, or failed by its own run (diverged); a trial failed
  because its process died is not: it is asked again."""
  states = optuna.trial.TrialState
  return t.state in (states.COMPLETE, states.PRUNED) or (
      t.state == states.FAIL and ERROR in t.user_attrs)


def progress(study: optuna.Study) -> Progress:
  done = [t for t in study.get_trials(deepcopy=False) if is_finished(t)]
  return Progress(len(done), sum(t.user_attrs.get(SECONDS, 0.0)
                                 for t in done))


def recover_interrupted(study: optuna.Study, sweep: space_lib.Sweep
                        ) -> list[int]:
  """Marks the trials left running by a dead process failed and asks each
  again with its parameters, to resume in its own directory. Returns their
  directory numbers. One killed before all its parameters were drawn had
  not started training: it is only marked failed."""
  resumed = []
  running = study.get_trials(deepcopy=False,
                             states=(optuna.trial.TrialState.RUNNING,))
  for t in running:
    study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    if set(t.params) != set(sweep.space):
      continue
    number = t.user_attrs.get(RESUMES, t.number)
    study.enqueue_trial(t.params, user_attrs={
        RESUMES: number, SECONDS_BEFORE: t.user_attrs.get(SECONDS, 0.0)})
    resumed.append(number)
  return resumed


def _metric(metrics: dict[str, float], name: str) -> float:
  if name not in metrics:
    raise ConfigError(f"sweep metric {name!r} is not in the run's "
                      f"evaluation, which has {sorted(metrics)}.")
  return float(metrics[name])


def run_trial(study: optuna.Study, sweep: space_lib.Sweep, config, workdir: str,
              train: TrainFn = loop.run) -> optuna.trial.FrozenTrial:
  """Asks one trial, trains it in `W/trials/<n>/` reporting every periodic
  evaluation to the pruner, and tells its result."""
  trial = study.ask()
  params = space_lib.suggest(trial, sweep)
  number = trial.user_attrs.get(RESUMES, trial.number)
  trial_dir = os.path.join(workdir, "trials", str(number))
  trial_config = space_lib.apply(config, params)
  trial_config.progress_bar = False
  trial.set_user_attr(WORKDIR, os.path.relpath(trial_dir, workdir))
  trial.set_user_attr(VALUES, {k: repr(v) for k, v in params.items()})
  before = trial.user_attrs.get(SECONDS_BEFORE, 0.0)
  start = time.perf_counter()

  def seconds():
    return before + time.perf_counter() - start

  def on_eval(step: int, metrics: dict[str, float]) -> bool:
    trial.report(_metric(metrics, sweep.metric), step)
    trial.set_user_attr(SECONDS, seconds())
    return sweep.pruner != "none" and trial.should_prune()

  try:
    result = train(trial_config, trial_dir, on_eval=on_eval)
  except FloatingPointError as e:  # diverged: a result, not a crash
    trial.set_user_attr(SECONDS, seconds())
    trial.set_user_attr(ERROR, str(e))
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return study.trials[trial.number]
  trial.set_user_attr(SECONDS, seconds())
  trial.set_user_attr(STEPS, int(result["step"]))
  if result.get("stopped_early"):
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
  else:
    value = _metric(result, sweep.metric)
    trial.report(value, int(result["step"]))  # the curve's last point
    study.tell(trial, value)
  return study.trials[trial.number]


def check_first_config(config, sweep: space_lib.Sweep) -> None:
  """Fails before any training when a sweep key does not exist in the
  config, a value does not fit, or pruning has no evaluations to read."""
  sample = {k: (d.choices[0] if isinstance(d, space_lib.Categorical)
                else d.low) for k, d in sweep.space.items()}
  config_lib.validate(space_lib.apply(config, sample))
  if sweep.pruner != "none" and not config.eval_every:
    raise ConfigError(
        f"sweep pruner {sweep.pruner!r} reads the periodic evaluations, but "
        "config.eval_every is 0; set --config.eval_every or pruner='none'.")


def run(config, sweep: space_lib.Sweep, workdir: str, *,
        identity: dict[str, str], trials: int | None = None,
        time_budget_s: float | None = None, train: TrainFn = loop.run,
        progress_bar: bool = True) -> optuna.Study:
  """Runs trials until `trials` (default: the sweep's) are finished or the
  finished trials' training time reaches `time_budget_s`; continues the
  study already in `workdir`. Returns the study."""
  target = trials if trials is not None else sweep.trials
  if target < 1:
    raise ConfigError(f"--trials must be >= 1, got {target}.")
  if sweep.sampler == "grid":  # each point once
    target = min(target, sweep.grid_size())
  check_first_config(config, sweep)
  with exclusive(workdir):
    study = open_study(workdir, sweep, identity)
    resumed = recover_interrupted(study, sweep)
    if resumed:
      print(f"Resuming interrupted trial(s) {resumed} from their "
            "checkpoints.")
    done = progress(study)
    bar = tqdm.tqdm(total=target, initial=min(done.finished, target),
                    unit="trial", disable=not progress_bar,
                    dynamic_ncols=True)
    try:
      while done.finished < target and (
          time_budget_s is None or done.seconds < time_budget_s):
        frozen = run_trial(study, sweep, config, workdir, train)
        done = progress(study)
        bar.update(1)
        bar.set_postfix(last=frozen.state.name.lower(), best=_best(study))
    finally:
      bar.close()
    if time_budget_s is not None and done.seconds >= time_budget_s:
      print(f"Time budget reached: {done.seconds / 60:.1f} min of training "
            f"in {done.finished} finished trials.")
  return study


def _best(study: optuna.Study) -> str:
  try:
    return f"{study.best_value:.4f}"
  except ValueError:  # no complete trial yet
    return "-"


def load_study(workdir: str) -> optuna.Study:
  """The study in `workdir`, read-only use (the report)."""
  if not os.path.exists(os.path.join(workdir, "study.db")):
    raise ConfigError(f"{workdir!r} holds no sweep (no study.db).")
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  return optuna.load_study(study_name=STUDY_NAME,
                           storage=storage_url(workdir))


def sweep_identity(sweep: space_lib.Sweep, config) -> dict[str, str]:
  """The sweep's identity plus its base config."""
  return {**sweep.identity(),
          "config": json.dumps(json.loads(config.to_json_best_effort()),
                               sort_keys=True)}
