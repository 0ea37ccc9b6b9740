"""A benchmark suite: workloads x methods x learning-rate grid x seeds.

A suite config (see configs/bench/) names, for each workload, a training
config file (+ variant and overrides), the evaluation interval and the
target; for each method, an optimizer section and a learning-rate grid of
the same size as every other method's. The protocol:

  1. every (workload, method, learning rate, seed) trial trains the same
     number of steps (`run_trial`), or stops at the workload's maximum
     runtime, `max_train_s` (AlgoPerf's: a target not reached by then is
     missed);
  2. the target of a workload is `target` if given, else `target_fraction`
     x the best mean final accuracy that the baseline method reaches over
     its grid (or, with `target_rule="worst_seed_best"`, x the lowest best
     accuracy over its seeds at that grid value: one every seed reaches);
  3. each method's learning rate is the grid value with the fewest mean
     steps to target over the seeds (a seed that never reaches it counts as
     twice the budget), ties broken by final accuracy;
  4. reported per method at its chosen learning rate: steps and train
     seconds to target (mean and spread over seeds), final accuracy, time
     per step, compile time, and the ratios to the baseline;
  5. optionally (`sensitivity`, factors such as (0.1, 10)): every method
     trains again at its chosen learning rate times each factor, same seeds,
     and reports final accuracy and steps to target there (how much a
     wrong learning rate costs).

A method with `schedules` (AdamW and NAdamW choose between cosine and
linear decay to zero) is tuned over schedule x learning rate. Every tuned
method's row also carries its sweep's train seconds (`sweep_s`) and its
time to target with them (`seconds_with_sweep`). With `self_tuning`, each
method also trains once per seed at its `default_lr` (AlgoPerf's
self-tuning ruleset; accel.bench.rulesets reads both).

With `tuning_seeds`, the grid runs on those seeds only; each method's
learning rate is chosen there (step 3, against a target from the
baseline's tuning runs), and then `seeds`, separate seeds, train at the
chosen rates. What is reported comes from those seeds alone, so the choice
of learning rate does not flatter them.

A method may also carry `overrides` of the training config (batch
selection, steps), a `batch_multiplier`, and `match_wallclock_of: other`:
it then trains as many steps as fit in the other method's wall-clock at the
baseline's time per step. A selection with irreducible_table='auto' gets a
table made for the workload first (accel.train.irreducible; its seconds are
reported).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import ml_collections
import numpy as np

from accel.bench import journal as journal_lib
from accel.bench import overhead
from accel.bench import split
from accel.bench import trial as trial_lib
from accel.bench import trial_configs
from accel.errors import ConfigError
from accel.selection import tables
from accel.train import config as config_lib
from accel.train import irreducible

def _score(trials, budget):
  steps = [t["steps_to_target"] if t["steps_to_target"] is not None
           else 2 * budget for t in trials]
  return (float(np.mean(steps)), -float(np.mean(
      [t["final_accuracy"] for t in trials])))


def _stats(values):
  vals = [v for v in values if v is not None]
  if len(vals) < len(values) or not vals:
    return {"mean": None, "std": None, "reached": len(vals),
            "values": values}
  return {"mean": float(np.mean(vals)), "std": float(np.std(vals)),
          "reached": len(vals), "values": values}


def _choose_rate(by_lr, target: float, budget: int) -> float:
  """Marks every trial's first reach of `target` and returns the learning
  rate with the best score (step 3 of the protocol)."""
  for runs in by_lr.values():
    for t in runs:
      t.update(trial_lib.first_reach(t["curve"], target))
  return min(by_lr, key=lambda l: _score(by_lr[l], budget))


def _mean_or_none(values):
  vals = [v for v in values if v is not None]
  return float(np.mean(vals)) if vals else None


def _selection_of(method) -> dict[str, Any]:
  """The `selection` section of a method's config overrides ({} if none)."""
  return dict(dict(method.get("overrides", {})).get("selection", {}))


_UNSET = object()


# Sections that name a builder (their options depend on the name): whole
# in every key.
_NAMED = ("data", "model", "optim")


def _keyed(config) -> dict[str, Any]:
  """What of a training config counts in a journal key: every top-level key
  and section option not at its base_config() default (so a new option, at
  its default, leaves an unfinished run's journal valid); the data, model
  and optimizer sections count whole."""
  base = config_lib.base_config().to_dict()
  keyed = {}
  for k, v in config.to_dict().items():
    default = base.get(k, _UNSET)
    if k in _NAMED:
      keyed[k] = v
    elif isinstance(v, dict) and isinstance(default, dict):
      keyed[k] = {o: x for o, x in v.items() if default.get(o, _UNSET) != x}
    elif v != default:
      keyed[k] = v
  return keyed


def trial_key(wname: str, mname: str, config, eval_every: int,
              made_table: bool = False, repeat: int = 0) -> str:
  """A trial's journal key: its names and its training config (`_keyed`).
  `made_table`: the irreducible-loss table is made afresh in each process,
  so its path is not part of the key."""
  keyed = _keyed(config)
  if made_table:
    keyed.setdefault("selection", {})["irreducible_table"] = "auto"
  return journal_lib.key(wname, mname, keyed, eval_every,
                         *((repeat,) if repeat else ()))


def run_one(workload, wname, mname, method, lr, seed, log, journal=None,
            repeat: int = 0):
  """One trial as the suite runs it (the workload's eval interval and
  maximum runtime), logged as `<wname> <mname> lr=.. seed=..`; with a
  `journal` (accel.bench.journal), its stored record when an earlier,
  unfinished run of the suite finished it. `repeat` > 0 trains the same
  trial again (its own journal entry)."""
  c = trial_configs.trial_config(workload, method, lr, seed)
  t0 = time.perf_counter()
  paused0 = 0.0 if journal is None else journal.paused_s

  limit = workload.get("max_train_s")
  def train():
    r = trial_lib.run_trial(c, eval_every=workload.eval_every,
                            max_train_s=limit)
    r["seed"], r["learning_rate"] = seed, lr
    r["load_avg_1m"] = os.getloadavg()[0]
    return r
  what = f"{wname} {mname} lr={lr:g} seed={seed}" + (
      f" (repeat {repeat})" if repeat else "")
  if journal is None:
    r, stored = train(), False
  else:
    r, stored = journal.run(trial_key(wname, mname, c, workload.eval_every,
                                      "il_table_s" in method, repeat),
                            what, train, scope=wname)
  # A record stored before the workload had its limit, held to it.
  r = trial_lib.cut(r, limit)
  # The trial's wall time, without a wait on W/PAUSE before it.
  wall = time.perf_counter() - t0 - (
      0.0 if journal is None else journal.paused_s - paused0)
  log(f"{what}: final acc {r['final_accuracy']:.4f}, "
      f"{r['step_ms']:.2f} ms/step, " + (
          "stored by an earlier run" if stored else f"{wall:.1f}s"),
      flush=True)
  return r


def _final_diagnostics(runs):
  """Mean over seeds of the learned components' last logged train metrics
  (multipliers and the like: keys with a '/')."""
  keys = set.intersection(*[{k for k in t["curve"][-1].get("train", {})
                             if "/" in k} for t in runs])
  return {k: float(np.mean([t["curve"][-1]["train"][k] for t in runs]))
          for k in sorted(keys)}


def _run_grid(trials, methods, workload, wname, seeds, log, journal):
  # Methods interleave (A B A B ...) so a burst of load on the shared
  # machine hits them alike; grids of equal size pair up index by index.
  if not methods:
    return
  grid_size = max(len(m.learning_rates) for m in methods.values())
  for i in range(grid_size):
    for seed in seeds:
      for mname, method in methods.items():
        if i >= len(method.learning_rates):
          continue
        lr = method.learning_rates[i]
        trials[mname][lr].append(
            run_one(workload, wname, mname, method, lr, seed, log, journal))


def _with_tables(wname, workload, methods, log, folder: str):
  """Methods whose selection asks for irreducible_table='auto' get a table
  made for the workload in `folder` (once for all of them; its seconds are
  reported, not hidden)."""
  out, made = {}, None
  for mname, method in methods.items():
    if _selection_of(method).get("irreducible_table") == "auto":
      if made is None:
        c = trial_configs.workload_config(workload)
        t0 = time.perf_counter()
        table = irreducible.make_table(c, **dict(workload.get(
            "irreducible", {})))
        path = os.path.join(folder, f"{wname}.npz")
        tables.save_table(path, table, c.data)
        made = (path, time.perf_counter() - t0)
        log(f"{wname}: irreducible-loss table in {made[1]:.1f}s", flush=True)
      method = ml_collections.ConfigDict(method.to_dict())
      with method.unlocked():
        method.overrides.selection.irreducible_table = made[0]
        method.il_table_s = made[1]
    out[mname] = method
  return out


def _target(workload, baseline_trials) -> float:
  """The workload's `target`, else `target_fraction` x an accuracy of the
  baseline at the grid value with the best mean final accuracy: that mean
  (`target_rule` "mean_final", the default), or the lowest over its seeds
  of the best accuracy each reached ("worst_seed_best": a target the
  baseline reaches on every seed, as AlgoPerf's targets are)."""
  if workload.get("target"):
    return float(workload.target)
  runs = max(baseline_trials.values(), key=lambda r: np.mean(
      [t["final_accuracy"] for t in r]))
  rule = workload.get("target_rule", "mean_final")
  if rule == "mean_final":
    level = np.mean([t["final_accuracy"] for t in runs])
  elif rule == "worst_seed_best":
    level = min(t["best_accuracy"] for t in runs)
  else:
    raise ConfigError(f"Unknown target_rule {rule!r}; expected 'mean_final' "
                      "or 'worst_seed_best'.")
  return float(workload.target_fraction * level)


def _by_schedule(methods):
  """Methods with `schedules` (e.g. ("cosine", "linear")) as one entry per
  schedule, named "method@schedule"; {entry: (method, schedule or None)}."""
  out, of = {}, {}
  for mname, method in methods.items():
    for sched in method.get("schedules", None) or (None,):
      entry = ml_collections.ConfigDict(method.to_dict())
      if sched is not None:
        entry.optim = {**dict(entry.optim), "schedule": sched}
      name = mname if sched is None else f"{mname}@{sched}"
      out[name], of[name] = entry, (mname, sched)
  return out, of


def _sweep_seconds(by_lr) -> float:
  """Train seconds of every trial of a grid (each runs its whole budget)."""
  return float(sum(t["curve"][-1]["train_s"] for runs in by_lr.values()
                   for t in runs))


def _tune(wname, workload, methods, tuning_seeds, baseline, budget: int,
          log, journal):
  """(methods with learning_rates narrowed to the value each chose on
  `tuning_seeds`, and the schedule where it has `schedules` to choose
  from; a record of the tuning, with each method's sweep seconds)."""
  if any("match_wallclock_of" in m for m in methods.values()):
    raise ConfigError("tuning_seeds cannot yet tune methods with "
                      "match_wallclock_of; give them their own suite.")
  entries, of = _by_schedule(methods)
  trials = {e: {lr: [] for lr in entry.learning_rates}
            for e, entry in entries.items()}
  _run_grid(trials, entries, workload, wname, tuning_seeds, log, journal)
  target = _target(workload, {
      f"{e}:{lr}": runs for e, by_lr in trials.items() for lr, runs in
      by_lr.items() if of[e][0] == baseline})
  tuned, record = {}, {"seeds": list(tuning_seeds), "target": float(target),
                       "methods": {}}
  for mname in methods:
    options = []
    for e, (m, sched) in of.items():
      if m == mname:
        lr = _choose_rate(trials[e], target, budget)
        options.append((_score(trials[e][lr], budget), e, sched, lr))
    _, best, sched, lr = min(options, key=lambda o: o[0])
    grid = {}
    for _, e, s, _ in options:
      for l, r in trials[e].items():
        grid[str(l) if s is None else f"{s}:{l}"] = {
            "final_accuracy": float(np.mean([t["final_accuracy"]
                                             for t in r])),
            "steps_to_target": [t["steps_to_target"] for t in r]}
    record["methods"][mname] = {
        "learning_rate": lr, "schedule": sched, "grid": grid,
        "sweep_s": sum(_sweep_seconds(trials[e]) for _, e, _, _ in options),
        "sweep_trials": sum(len(r) for _, e, _, _ in options
                            for r in trials[e].values())}
    tuned[mname] = ml_collections.ConfigDict(entries[best].to_dict())
    tuned[mname].learning_rates = (lr,)
    log(f"{wname} {mname}: tuned learning rate {lr:g}"
        + (f", {sched} schedule" if sched else ""), flush=True)
  return tuned, record


def _self_tuning(wname, workload, methods, seeds, target, log,
                 journal) -> dict[str, dict[str, Any]]:
  """The self-tuning ruleset's runs: every method once per seed at its
  library default (`default_lr`, with its own or the workload's schedule),
  no sweep. (Tuned methods also enter that ruleset with their sweep's
  time: `_with_sweep`.)"""
  out = {}
  for mname, method in methods.items():
    runs = []
    for seed in seeds:
      r = run_one(workload, wname, mname, method, float(method.default_lr),
                  seed, log, journal)
      r.update(trial_lib.first_reach(r["curve"], target))
      runs.append(r)
    out[mname] = {
        "learning_rate": float(method.default_lr),
        "steps_to_target": _stats([t["steps_to_target"] for t in runs]),
        "seconds_to_target": _stats([t["seconds_to_target"] for t in runs]),
        "final_accuracy": _stats([t["final_accuracy"] for t in runs]),
        "trials": runs}
  return out


def _with_sweep(summary, record) -> None:
  """Adds the sweep's seconds, and the time to target including them (per
  seed: the sweep plus that seed's time), to each tuned method's row."""
  for mname, s in summary.items():
    tuned = (record or {}).get("methods", {}).get(mname)
    if tuned is None:
      continue
    s["sweep_s"] = tuned["sweep_s"]
    s["schedule"] = tuned["schedule"]
    s["seconds_with_sweep"] = _stats([
        None if v is None else v + tuned["sweep_s"]
        for v in s["seconds_to_target"]["values"]])


# Steps per overhead timing: with a few tens of sub-millisecond steps a
# timing lasts milliseconds, and the ratios it gives are noise.
OVERHEAD_STEPS = 100


def update_overhead(workload, methods, summary, baseline: str,
                    rounds: int, journal=None,
                    wname: str | None = None) -> list[dict[str, Any]]:
  """The optimizer update alone and the whole step, per method, timed as
  accel.bench.overhead does (interleaved rounds, median), at
  each method's chosen learning rate. Methods that differ from another
  only by batch selection are left out: their update is that optimizer's."""
  sections = {}
  for mname, method in methods.items():
    if mname != baseline and (_selection_of(method) or dict(method).get(
        "batch_multiplier") or "match_wallclock_of" in method):
      continue
    lr = summary[mname]["learning_rate"]
    sections[mname] = trial_configs.trial_config(workload, method, lr,
                                                 0).optim
  c = trial_configs.workload_config(workload)
  measure = lambda: overhead.measure({"w": c}, sections,
                                     steps=OVERHEAD_STEPS, rounds=rounds)
  if journal is None:
    rows = measure()
  else:
    rows, _ = journal.run(journal_lib.key(
        "update_overhead", _keyed(c), sections, OVERHEAD_STEPS, rounds),
                          f"{wname} optimizer update timings", measure,
                          scope=wname)
  return [{k: v for k, v in r.items() if k != "workload"} | {
      "steps_per_timing": OVERHEAD_STEPS}
          for r in overhead.ratios(rows, baseline)]


def _matched(methods, trials, budget: int, baseline: str):
  """Methods that get the wall-clock another method took, each with as
  many steps as fit in it at the baseline's (same batch, no scoring) time
  per step."""
  ms = lambda m: np.mean([t["step_ms"] for runs in trials[m].values()
                          for t in runs])
  matched = {}
  for mname, method in methods.items():
    if "match_wallclock_of" in method:
      steps = int(round(budget * ms(method.match_wallclock_of) / ms(baseline)))
      matched[mname] = ml_collections.ConfigDict(method.to_dict())
      overrides = dict(matched[mname].get("overrides", {}))
      overrides["total_steps"] = steps
      with matched[mname].unlocked():
        matched[mname].overrides = overrides
  return matched


def _summary(by_lr, method, target: float, budget: int) -> dict[str, Any]:
  """One method's row: its chosen rate's trials over the seeds."""
  lr = _choose_rate(by_lr, target, budget)
  runs = by_lr[lr]
  out = {
      "learning_rate": lr,
      "steps_to_target": _stats([t["steps_to_target"] for t in runs]),
      "seconds_to_target": _stats([t["seconds_to_target"] for t in runs]),
      "examples_to_target": _stats([t["examples_to_target"] for t in runs]),
      "final_accuracy": _stats([t["final_accuracy"] for t in runs]),
      "step_ms": float(np.mean([t["step_ms"] for t in runs])),
      "compile_s": float(np.mean([t["compile_s"] for t in runs])),
      "flops_per_step": _mean_or_none([t.get("flops_per_step")
                                       for t in runs]),
      "mfu": _mean_or_none([t.get("mfu") for t in runs]),
      "memory": {k: _mean_or_none([t.get("memory", {}).get(k)
                                   for t in runs])
                 for k in ("compiled_mb", "process_peak_rss_mb",
                           "device_peak_mb")},
      "load_avg_1m": _mean_or_none([t.get("load_avg_1m") for t in runs]),
      "grid": {str(l): float(np.mean([t["final_accuracy"] for t in r]))
               for l, r in by_lr.items()},
      "final_diagnostics": _final_diagnostics(runs),
      "total_steps": int(runs[0]["steps"]),
  }
  stopped = [t["steps"] for t in runs if t.get("stopped_at_s")]
  if stopped:
    out["stopped_at_steps"] = stopped
  if all("worst_class_accuracy" in t["curve"][-1] for t in runs):
    out["final_worst_class_accuracy"] = _stats(
        [t["curve"][-1]["worst_class_accuracy"] for t in runs])
  if "il_table_s" in method:
    out["irreducible_table_s"] = method.il_table_s
  return out


def _sensitivity(wname, workload, methods, summary, seeds, factors, target,
                 log, journal):
  """Every method again at its chosen rate times each factor: the trials,
  and each method's summary gains a `sensitivity` entry."""
  wrong = {m: {f: [] for f in factors} for m in methods}
  for factor in factors:
    for seed in seeds:
      for mname, method in methods.items():
        lr = summary[mname]["learning_rate"] * factor
        r = run_one(workload, wname, mname, method, lr, seed, log, journal)
        r.update(trial_lib.first_reach(r["curve"], target))
        wrong[mname][factor].append(r)
  for mname, by_factor in wrong.items():
    if by_factor:
      summary[mname]["sensitivity"] = {
          str(f): {"learning_rate": runs[0]["learning_rate"],
                   "final_accuracy": _stats([t["final_accuracy"]
                                             for t in runs]),
                   "steps_to_target": _stats([t["steps_to_target"]
                                              for t in runs]),
                   "final_diagnostics": _final_diagnostics(runs)}
          for f, runs in by_factor.items()}
  return wrong


def _repeat_baseline(wname, workload, baseline: str, method, row, seeds,
                     target, log, journal) -> None:
  """The baseline's reported trials once more, last in the workload: its
  run-to-run spread within this run (same steps, other timings), added to
  its summary `row` as `repeat`."""
  runs = []
  for seed in seeds:
    r = run_one(workload, wname, baseline, method, row["learning_rate"],
                seed, log, journal, repeat=1)
    r.update(trial_lib.first_reach(r["curve"], target))
    runs.append(r)
  row["repeat"] = {
      "steps_to_target": _stats([t["steps_to_target"] for t in runs]),
      "seconds_to_target": _stats([t["seconds_to_target"] for t in runs]),
      "step_ms": float(np.mean([t["step_ms"] for t in runs]))}


def _add_ratios(summary, baseline: str) -> None:
  b = summary[baseline]
  for s in summary.values():
    for key in ("steps_to_target", "seconds_to_target",
                "examples_to_target"):
      ok = s[key]["mean"] is not None and b[key]["mean"]
      s[key + "_ratio"] = s[key]["mean"] / b[key]["mean"] if ok else None


def run_workload(wname: str, workload, methods, seeds, baseline: str,
                 log=print, sensitivity=(), tuning_seeds=(),
                 overhead_rounds: int = 0, journal=None,
                 self_tuning: bool = False, repeat_baseline: bool = False,
                 meta_training_data=None) -> dict[str, Any]:
  """All trials of one workload; returns its results section.

  With a `journal` (accel.bench.journal.Journal), trials an earlier,
  unfinished run finished are taken from it, each new one is stored there,
  and no trial starts once its time budget is spent (OutOfTime).

  `workload.exclude_methods` ({method: reason}) leaves out methods that
  cannot run on it (the reason is recorded under "excluded").

  With `self_tuning`, every method also trains once per seed at its
  `default_lr` (the self-tuning ruleset: "self_tuning" in the result).
  With `repeat_baseline`, the baseline's reported trials run again at the
  end, and its summary's `repeat` holds their times (its run-to-run
  spread).
  A method's `schedules` (needs `tuning_seeds`) are part of its grid: it is
  tuned over each schedule and learning rate. With `meta_training_data`
  (the data sets meta-training used, accel.bench.split), the result says
  whether the workload is held out ("family")."""
  excluded = dict(workload.get("exclude_methods", {}))
  unknown = sorted(set(excluded) - set(methods))
  if unknown or baseline in excluded:
    raise ConfigError(
        f"Workload {wname!r} excludes {unknown or [baseline]}: "
        f"exclude_methods names methods of the suite other than the "
        f"baseline {baseline!r}; the suite's are {sorted(methods)}.")
  methods = {m: x for m, x in methods.items() if m not in excluded}
  if not tuning_seeds and any(m.get("schedules") for m in methods.values()):
    raise ConfigError("a method with `schedules` is tuned over them: the "
                      "suite needs tuning_seeds.")
  no_default = [m for m, x in methods.items() if "default_lr" not in x]
  if self_tuning and no_default:
    raise ConfigError(f"self_tuning needs a default_lr (the learning rate "
                      f"its library defaults to) for methods {no_default}.")
  config = trial_configs.workload_config(workload)
  budget = config.total_steps
  # Irreducible-loss tables live as long as the workload's trials.
  with tempfile.TemporaryDirectory(prefix="accel_il_") as folder:
    methods = _with_tables(wname, workload, methods, log, folder)
    untuned = methods
    tuning = None
    if tuning_seeds:
      methods, tuning = _tune(wname, workload, methods, tuning_seeds,
                              baseline, budget, log, journal)
    trials = {m: {lr: [] for lr in method.learning_rates}
              for m, method in methods.items()}
    plain = {m: x for m, x in methods.items()
             if "match_wallclock_of" not in x}
    _run_grid(trials, plain, workload, wname, seeds, log, journal)
    matched = _matched(methods, trials, budget, baseline)
    _run_grid(trials, matched, workload, wname, seeds, log, journal)
    methods = {**plain, **matched}
    target = _target(workload, trials[baseline])
    summary = {m: _summary(by_lr, methods[m], target, budget)
               for m, by_lr in trials.items()}
    for mname, method in methods.items():
      if _selection_of(method).get("scorer", "none") != "none":
        # Scoring + selection + gather, as a share of the selecting step
        # (the baseline trains on the same batch size without them).
        summary[mname]["scoring_share_of_step"] = (
            1.0 - summary[baseline]["step_ms"] / summary[mname]["step_ms"])
    wrong = _sensitivity(wname, workload, methods, summary, seeds,
                         sensitivity, target, log, journal)
    self_tuned = (_self_tuning(wname, workload, untuned, seeds, target,
                               log, journal)
                  if self_tuning else None)
    if repeat_baseline:
      _repeat_baseline(wname, workload, baseline, methods[baseline],
                       summary[baseline], seeds, target, log, journal)
  _with_sweep(summary, tuning)
  _add_ratios(summary, baseline)
  timings = None
  if overhead_rounds:
    timings = update_overhead(workload, methods, summary, baseline,
                              overhead_rounds, journal, wname)
    log(f"{wname}: optimizer update times measured", flush=True)
  family = (None if meta_training_data is None else split.family(
      config.data, meta_training_data))
  return {"target": float(target), "budget_steps": int(budget),
          "max_train_s": workload.get("max_train_s"), "family": family,
          "machine": None if journal is None else journal.machine_of(wname),
          "summary": summary, "excluded": excluded, "tuning": tuning,
          "self_tuning": self_tuned,
          "update_overhead": timings,
          "trials": {m: {str(l): r for l, r in by_lr.items()}
                     for m, by_lr in trials.items()},
          "sensitivity_trials": {m: {str(f): r for f, r in by_f.items()}
                                 for m, by_f in wrong.items() if by_f}}
