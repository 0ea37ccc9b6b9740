"""Runs a benchmark suite: time-to-target of each method against a baseline.

  python launch/bench.py --config configs/bench/gt_heldout.py --workdir W

writes W/results.json (every trial's curve, the chosen learning rates and
the summary), W/results.md (the table), W/profile.png (performance
profile) and W/curves_<workload>.png; `--report BENCHMARKS.md` also writes
the report with conclusions computed from the numbers, and `--also
A/results.json,B/results.json` appends the stored results of other suite
runs to it. `--rebuild` trains nothing: it redraws the table, figures and
report from W/results.json.

Each finished trial is also appended to W/trials.jsonl (accel.bench.journal)
until the suite ends: the same command run again after an interruption
takes the finished trials from there and trains only the rest. With a time
budget (`--time_budget_minutes`, or the suite config's
`time_budget_minutes`), no trial starts once it is spent: the workloads
finished so far are written, marked as stopped, and the command exits with
status 1; running it again continues, and until it has replayed the
workloads that the previous invocation finished, it keeps those in its
results (from W/results.json, each where its config is the same). While a
file W/PAUSE exists, no trial starts (`touch W/PAUSE` before loading the
machine with other work, `rm W/PAUSE` to go on): trials are timed, and
other work would slow them.

Each workload's trials all run on one machine (the journal names it): each
machine continues its own copy of an unfinished workload (the journal keeps
every machine's copies side by side), and the first copy finished is the
one reported, on every machine from then on. Run the same command on each
machine in turn; the report names each workload's machine.
`--replay_only` trains nothing: it writes the results of every workload
whose copy on this machine (or finished copy) is whole, and names the
trials stored of the others, e.g. to report a run stopped by hand; it keeps
the journal, even a whole one (a finished suite's journal kept in git).
"""

import datetime
import json
import os
import sys
import tempfile
from typing import Any

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from accel.bench import host
from accel.bench import journal as journal_lib
from accel.bench import report
from accel.bench import split
from accel.bench import suite
from accel.bench import tables
from accel.bench import trial_configs
from accel.train import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Suite config file, optionally `file.py:variant`.",
    lock_config=True)
_ALSO = flags.DEFINE_list(
    "also", [], "results.json files of other suite runs to append to the "
    "report, each as its own section.")
_REBUILD = flags.DEFINE_bool(
    "rebuild", False, "Train nothing: redraw results.md, the figures and "
    "the report from WORKDIR/results.json.")
_REPLAY_ONLY = flags.DEFINE_bool(
    "replay_only", False, "Train nothing: write the results and report of "
    "the workloads that WORKDIR/trials.jsonl holds whole; the others are "
    "named as not finished.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Results go here.")
_BUDGET = flags.DEFINE_float(
    "time_budget_minutes", None, "Start no trial after this many minutes "
    "(default: the suite config's time_budget_minutes, else no budget; 0: "
    "no budget).")
_REPORT = flags.DEFINE_string(
    "report", None, "Also write the Markdown report (conclusions, tables, "
    "figures) here, e.g. BENCHMARKS.md.")
flags.mark_flags_as_required(["workdir"])

# The checkout this file is in (its results name it: see _earlier_workloads).
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  others = report.load_other_runs(_ALSO.value)  # fails now, not after
  if _REBUILD.value:
    results = report.load_results(os.path.join(_WORKDIR.value,
                                               "results.json"))
    _write(results, results["config"]["baseline"], others)
    return
  if _CONFIG.value is None:
    raise app.UsageError("--config is required (unless --rebuild).")
  import jax  # pylint: disable=g-import-not-at-top
  if not jax.config.jax_compilation_cache_dir:
    # The seeds of one learning rate compile the same programs: a cache for
    # this run compiles each once (compile time is excluded from every
    # timing either way, and reported apart).
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(
        prefix="accel-bench-xla-cache-"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  c = _CONFIG.value
  os.makedirs(_WORKDIR.value, exist_ok=True)
  budget = (_BUDGET.value if _BUDGET.value is not None
            else c.get("time_budget_minutes"))
  machine = host.describe(jax.__version__, jax.devices()[0].device_kind)
  trials = journal_lib.Journal(os.path.join(_WORKDIR.value, "trials.jsonl"),
                               budget_s=60 * budget if budget else None,
                               machine=machine,
                               pause_path=os.path.join(_WORKDIR.value,
                                                       "PAUSE"),
                               replay_only=_REPLAY_ONLY.value)
  if trials.stored:
    print(f"Continuing an unfinished run: {trials.stored} finished trials "
          f"in {trials.path} are taken from there (delete it to start "
          "afresh).", flush=True)
  # The command that trains (and continues) the suite: a replay's is the
  # same command without --replay_only.
  command = [a for a in sys.argv
             if a.split("=")[0] not in ("--replay_only", "--noreplay_only")]
  results = {"command": " ".join(["python"] + command),
             "date": datetime.datetime.now().isoformat(timespec="minutes"),
             "machine": machine, "checkout": _CHECKOUT,
             "load_avg_start": os.getloadavg(),
             "config": c.to_dict(), "workloads": {}}
  seen = (split.meta_training_data_sets(c.meta_training_config)
          if c.get("meta_training_config") else None)
  order = list(c.workloads)
  if seen is not None:
    order = split.held_out_first({
        w: split.family(trial_configs.workload_config(c.workloads[w]).data,
                        seen)["family"] for w in order})
  waiting = {}  # finished on another machine, now lacking a trial
  unreplayed = []  # --replay_only: not whole in the journal
  done = {}  # this run's workloads
  carried = _earlier_workloads(c, order) if trials.stored else {}
  _merge(results, order, done, carried)

  def run_workload(wname):
    return suite.run_workload(
        wname, c.workloads[wname], c.methods, list(c.seeds), c.baseline,
        sensitivity=tuple(c.get("sensitivity", ())),
        tuning_seeds=tuple(c.get("tuning_seeds", ())),
        overhead_rounds=int(c.get("overhead_rounds", 0)),
        journal=trials, self_tuning=bool(c.get("self_tuning", False)),
        repeat_baseline=bool(c.get("repeat_baseline", False)),
        meta_training_data=seen)

  try:
    for wname in order:
      try:
        try:
          done[wname] = run_workload(wname)
        except journal_lib.OtherCopy as e:
          print(f"{wname}: {e}; this machine continues its own copy.",
                flush=True)
          trials.own_copy(wname)
          done[wname] = run_workload(wname)
      except journal_lib.OtherMachine as e:
        waiting[wname] = e.machine
        print(f"{wname}: finished on {e.machine!r}, which lacks one of its "
              "trials now; left for that machine.", flush=True)
        continue
      except journal_lib.NotStored:
        unreplayed.append(wname)
        trials.give_back(wname)
        continue
      trials.mark_finished(wname)
      carried.pop(wname, None)
      _merge(results, order, done, carried)
      results["load_avg_end"] = os.getloadavg()
      _save(results, c.baseline, trials)
  except journal_lib.OutOfTime as e:
    left = [w for w in order if w not in results["workloads"]]
    _stop(results, c.baseline, trials, others,
          f"{e}; not finished: {', '.join(left)}")
  left = [f"{w} ({_copies(trials, w)})" for w in unreplayed] + [
      f"{w} waits for the machine that finished it, {m}"
      for w, m in waiting.items()]
  if left:
    replayed = (f"replayed the journal only (--replay_only, nothing "
                f"trained) on {results['date'][:10]}; " if unreplayed
                else "")
    _stop(results, c.baseline, trials, others,
          replayed + "not finished: " + "; ".join(left))
  trials.finish()
  _write(results, c.baseline, others)


def _copies(trials, scope: str) -> str:
  """The trials stored of each machine's copy of `scope`, in words."""
  copies = trials.copies(scope)
  if not copies:
    return "no trials stored"
  return "trials stored: " + " and ".join(
      f"{n} on {m or 'an unnamed machine'}" for m, n in copies.items())


def _earlier_workloads(c, order: list[str]) -> dict[str, Any]:
  """The workloads in `order` that the previous, unfinished invocation of
  this suite (same workdir) had finished, from its results.json, where
  they ran the same config: the same suite-wide settings (methods, seeds,
  baseline...) and the same workload entry. They were computed from the
  journal's trials, as this run will compute them again when it replays
  them; until then they stay in the results, so that a run stopped before
  it reaches them does not drop them. A workload whose entry changed (a
  resized one, trained afresh) carries nothing; the others still carry.
  Empty where there is no such file or the suite-wide settings differ
  (paths into each run's own checkout compare from the checkout on: a
  worktree runs the same config)."""
  path = os.path.join(_WORKDIR.value, "results.json")
  if not os.path.exists(path):
    return {}
  earlier = report.load_results(path)
  then = _portable(earlier.get("config") or {}, earlier.get("checkout"))
  now = _portable(c.to_dict(), _CHECKOUT)
  then_workloads = then.pop("workloads", None) or {}
  now_workloads = now.pop("workloads")
  if then != now:
    return {}
  return {w: r for w, r in earlier.get("workloads", {}).items()
          if w in order and then_workloads.get(w) == now_workloads[w]}


def _portable(config, checkout: str | None):
  """`config` as JSON data, with `checkout`/ written as <checkout>/."""
  text = json.dumps(config, default=str)
  if checkout:
    text = text.replace(json.dumps(checkout.rstrip(os.sep) + os.sep)[1:-1],
                        "<checkout>/")
  return json.loads(text)


def _merge(results, order: list[str], done, carried) -> None:
  """results["workloads"]: this run's and the carried ones, in `order`;
  the carried ones are also named under carried_from_earlier_invocation."""
  results["workloads"] = {w: done[w] if w in done else carried[w]
                          for w in order if w in done or w in carried}
  if carried:
    results["carried_from_earlier_invocation"] = [w for w in order
                                                  if w in carried]
  else:
    results.pop("carried_from_earlier_invocation", None)


def _stop(results, baseline, trials, others, why: str) -> None:
  """Saves and reports the workloads finished so far and exits: the suite
  did not finish, for the reason `why` (status 1; 0 after a replay, which
  did what it was asked)."""
  results["stopped"] = why
  _save(results, baseline, trials)
  if results["workloads"]:
    _write(results, baseline, others)
  message = (f"Stopped: {why}. The finished trials are in {trials.path}: "
             "run the same command again to continue.")
  if trials.replay_only:
    print(message, flush=True)
    sys.exit(0)
  sys.exit(message)


def _save(results, baseline, trials) -> None:
  """results.json and results.md so far; `trials` is the run's journal."""
  results["trials_from_earlier_run"] = trials.reused
  with open(os.path.join(_WORKDIR.value, "results.json"), "w") as f:
    json.dump(results, f, indent=1, default=str)
  _write_table(results, baseline)


def _write_table(results, baseline) -> str:
  table = tables.markdown(results, baseline)
  with open(os.path.join(_WORKDIR.value, "results.md"), "w") as f:
    f.write(f"`{results['command']}`\n\n{results['date']}, "
            f"{results['machine']}\n\n{table}\n")
  return table


def _write(results, baseline, others) -> None:
  table = _write_table(results, baseline)
  figures = report.write_all(results, baseline, _WORKDIR.value,
                             _REPORT.value, others)
  print(table)
  print("figures:", ", ".join(figures))


if __name__ == "__main__":
  cli.run(main)
