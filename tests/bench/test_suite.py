"""The suite protocol: learning-rate choice, ratios, tuning seeds, method
overrides, targets, the update timings, the journal of an interrupted
suite, and the launcher's time budget."""

import json
import os
import re
import shutil

import ml_collections
import pytest

from accel.bench import journal as journal_lib
from accel.bench import suite
from accel.bench import tables
from accel.bench import trial_configs

# This checkout's configs/ (the launcher's suites name it, as cpu.py does).
_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "configs")


def test_suite_picks_learning_rates_and_ratios(fakes, monkeypatch):
  monkeypatch.setattr(suite.trial_lib, "run_trial", fakes.trial)
  workload, methods = fakes.suite((1e-3, 1e-2))
  fakes.name_methods()
  out = suite.run_workload("w", workload, methods, [0, 1], "slow",
                           log=lambda *_, **__: None, sensitivity=(0.1,))
  # Baseline "slow" at its best lr (1e-2) ends at accuracy 1.0: target 0.9.
  assert out["target"] == pytest.approx(0.9)
  s = out["summary"]
  assert s["slow"]["learning_rate"] == 1e-2
  assert s["slow"]["steps_to_target"]["mean"] == 90
  # "fast" at 1e-2 reaches 0.9 at step 50 (0.45 of the budget x 2 speed).
  assert s["fast"]["learning_rate"] == 1e-2
  assert s["fast"]["steps_to_target"]["mean"] == 50
  assert s["fast"]["steps_to_target_ratio"] == pytest.approx(50 / 90)
  assert s["fast"]["seconds_to_target_ratio"] == pytest.approx(
      0.75 / 0.9)
  # A 10x too small learning rate halves the speed: "fast" still reaches
  # the target (at step 90), "slow" ends at 0.5.
  wrong_fast = s["fast"]["sensitivity"]["0.1"]
  assert wrong_fast["learning_rate"] == pytest.approx(1e-3)
  assert wrong_fast["steps_to_target"]["values"] == [90, 90]
  wrong_slow = s["slow"]["sensitivity"]["0.1"]
  assert wrong_slow["final_accuracy"]["mean"] == pytest.approx(0.5)
  assert wrong_slow["steps_to_target"]["reached"] == 0
  table = tables.markdown({"workloads": {"w": out}}, "slow")
  assert "| w | 0.9000 | fast | 0.01 | 50 ± 0 | 0.56 |" in table
  assert "| w | slow | 0.01 | 0.5000 ± 0.0000 | 0/2 |" in table


def test_tuning_seeds_pick_the_rate_and_report_only_other_seeds(
    fakes):
  ran = fakes.record()
  fakes.name_methods()
  workload, methods = fakes.suite((1e-3, 1e-2))
  out = suite.run_workload("w", workload, methods, [0, 1], "slow",
                           log=lambda *_, **__: None, tuning_seeds=(100,))
  tuning = [r for r in ran if r[2] == 100]
  assert sorted(tuning) == sorted([(m, lr, 100) for m in ("fast", "slow")
                                   for lr in (1e-3, 1e-2)])
  # After tuning, only the chosen rate ran, on the reported seeds.
  assert sorted(r for r in ran if r[2] != 100) == sorted(
      [(m, 1e-2, seed) for m in ("fast", "slow") for seed in (0, 1)])
  assert out["tuning"]["methods"]["fast"]["learning_rate"] == 1e-2
  assert out["tuning"]["methods"]["fast"]["grid"]["0.001"][
      "steps_to_target"] == [90]
  assert list(out["trials"]["fast"]) == ["0.01"]
  assert out["summary"]["fast"]["steps_to_target"]["values"] == [50, 50]


def test_unknown_override_is_named():
  with pytest.raises(ValueError, match="'totl_steps' is not a key"):
    trial_configs.load_config("mnist1d_mlp", {"totl_steps": 5})


def test_method_overrides_batch_multiplier_and_matched_wallclock(
    fakes, monkeypatch):
  workload = ml_collections.ConfigDict(dict(
      config="mnist1d_mlp", eval_every=10, target_fraction=0.9,
      overrides={"total_steps": 100}))
  big = ml_collections.ConfigDict(dict(
      optim={"name": "adamw"}, batch_multiplier=4,
      overrides={"selection": {"scorer": "loss", "ratio": 2.0}}))
  c = trial_configs.trial_config(workload, big, 1e-3, 0)
  assert c.batch_size == 4 * trial_configs.load_config("mnist1d_mlp", {}).batch_size
  assert c.selection.scorer == "loss" and c.selection.ratio == 2.0
  # "same_time" gets the steps that fit in "fast"'s time (15 ms/step) at
  # the baseline's 10 ms/step: 150.
  seen = []

  def fake(config, *, eval_every, max_train_s=None):
    seen.append(config.total_steps)
    return fakes.trial(config, eval_every=eval_every,
                       max_train_s=max_train_s)
  monkeypatch.setattr(suite.trial_lib, "run_trial", fake)
  fakes.name_methods()
  methods = ml_collections.ConfigDict({
      "base": dict(optim={"name": "adamw"}, learning_rates=(1e-2,)),
      "fast": dict(optim={"name": "nadamw"}, learning_rates=(1e-2,)),
      "same_time": dict(optim={"name": "adamw"}, learning_rates=(1e-2,),
                        match_wallclock_of="fast")})
  out = suite.run_workload("w", workload, methods, [0], "base",
                           log=lambda *_, **__: None)
  assert seen == [100, 100, 150]
  assert out["summary"]["same_time"]["total_steps"] == 150


@pytest.mark.parametrize("name", ["cpu.py", "cpu.py:full", "cpu.py:more",
                                  "gpu.py", "gpu.py:all",
                                  "gpu.py:workload=recall_lm",
                                  "gt_heldout.py", "meta_attention.py",
                                  "selection.py", "selection_pays.py",
                                  "selection_pays.py:quick"])
def test_every_bench_config_gives_valid_trials(name):
  """Each workload x method of a shipped bench config resolves to a train
  config that validates (a typo there would only fail hours into a run)."""
  from accel import data  # pylint: disable=g-import-not-at-top
  from accel import selection  # pylint: disable=g-import-not-at-top
  from accel.train import config as config_lib  # pylint: disable=g-import-not-at-top
  bench = config_lib.load_file(f"configs/bench/{name}")
  specs = {}
  for workload in bench.workloads.values():
    excluded = dict(workload.get("exclude_methods", {}))
    assert set(excluded) <= set(bench.methods) - {bench.baseline}
    for mname, method in bench.methods.items():
      if mname in excluded:
        continue
      for lr in (method.learning_rates[0], method.learning_rates[-1]):
        c = trial_configs.trial_config(workload, method, lr, 0)
        config_lib.validate(c)
      # What only the data set can tell: a scorer that needs class labels
      # on a language-model task; more examples a step (candidates, with
      # selection on) than the training split holds.
      key = c.data.to_json()
      if key not in specs:
        specs[key] = data.make_source(c.data).spec
      selection.check_task(c.selection, specs[key])
      per_step = selection.candidate_batch_size(c.selection, c.batch_size)
      assert per_step <= specs[key].num_train, (mname, per_step)


def test_workload_configs_are_found_from_any_working_directory(
    monkeypatch, tmp_path):
  """A suite config names its own configs/ folder, so its trials resolve
  wherever the command runs (a non-editable install has no configs/ next
  to the package)."""
  from accel.train import config as config_lib  # pylint: disable=g-import-not-at-top
  bench = config_lib.load_file("configs/bench/cpu.py:quick")
  monkeypatch.chdir(tmp_path)
  for workload in bench.workloads.values():
    assert os.path.isdir(workload.config_dir)
    method = bench.methods[bench.baseline]
    c = trial_configs.trial_config(workload, method, 1e-3, 0)
    assert c.optim.learning_rate == 1e-3
  with pytest.raises(ValueError, match="workload config .* does not exist"):
    trial_configs.load_config("mnist1d_mlp", {})  # relative: not here


def test_target_rules():
  runs = {0.01: [{"final_accuracy": 0.8, "best_accuracy": 0.9},
                 {"final_accuracy": 0.6, "best_accuracy": 0.7}],
          0.1: [{"final_accuracy": 0.5, "best_accuracy": 0.95}]}
  w = ml_collections.ConfigDict(dict(target_fraction=0.5))
  assert suite._target(w, runs) == pytest.approx(0.35)  # pylint: disable=protected-access
  w.target_rule = "worst_seed_best"
  assert suite._target(w, runs) == pytest.approx(0.35)  # pylint: disable=protected-access
  runs[0.01][1]["best_accuracy"] = 0.8
  assert suite._target(w, runs) == pytest.approx(0.4)  # pylint: disable=protected-access
  w.target_rule = "median"
  with pytest.raises(ValueError, match="Unknown target_rule 'median'"):
    suite._target(w, runs)  # pylint: disable=protected-access


def test_update_overhead_times_each_optimizer_at_its_rate(monkeypatch):
  # 10 steps a timing instead of 100: the same programs and bookkeeping,
  # a tenth of the steps (15 s of this test were the steps on the 8
  # simulated devices).
  monkeypatch.setattr(suite, "OVERHEAD_STEPS", 10)
  workload = ml_collections.ConfigDict(dict(
      config="mnist1d_mlp:debug", eval_every=10, target_fraction=0.9,
      overrides={"total_steps": 20}))
  methods = ml_collections.ConfigDict({
      "adamw": dict(optim={"name": "adamw"}, learning_rates=(1e-3,)),
      "lion": dict(optim={"name": "lion"}, learning_rates=(1e-4,)),
      "loss_topk": dict(optim={"name": "adamw"}, learning_rates=(1e-3,),
                        overrides={"selection": {"scorer": "loss"}})})
  summary = {m: {"learning_rate": x.learning_rates[0]}
             for m, x in methods.items()}
  rows = suite.update_overhead(workload, methods, summary, "adamw", rounds=2)
  # The selecting method's update is AdamW's: not timed twice.
  assert [r["method"] for r in rows] == ["adamw", "lion"]
  assert rows[0]["update_ratio"] == 1.0 and rows[0]["step_ratio"] == 1.0
  assert all(r["update_ms"] > 0 and r["step_ms"] > 0 for r in rows)
  assert {r["steps_per_timing"] for r in rows} == {suite.OVERHEAD_STEPS}
  # Each round's step time is kept for the intervals; the median is shown.
  for r in rows:
    assert len(r["step_ms_rounds"]) == 2
    assert r["step_ms"] == pytest.approx(sum(r["step_ms_rounds"]) / 2)
  from accel.bench import report  # pylint: disable=g-import-not-at-top
  results = {"workloads": {"w": {"update_overhead": rows}}}
  assert report.overhead_steps(results) == suite.OVERHEAD_STEPS
  # With the trials' time per step, the share outside the jitted step.
  results["workloads"]["w"]["summary"] = {
      "adamw": {"step_ms": 4 * rows[0]["step_ms"]}}
  table = report.update_table(results)
  assert table.splitlines()[2].endswith(
      f"| {4 * rows[0]['step_ms']:.3f} | 75% |")
  assert table.splitlines()[3].endswith("| - | - |")
  assert report.overhead_steps({"workloads": {"w": {}}}) == 20
  # Lion keeps one moment, AdamW two.
  assert rows[1]["state_ratio"] == pytest.approx(0.5, rel=0.05)


def test_stored_update_timings_survive_a_new_option_at_its_default(
    monkeypatch, tmp_path):
  from accel import selection  # pylint: disable=g-import-not-at-top
  from accel.bench import journal  # pylint: disable=g-import-not-at-top
  measured = []

  def measure(configs, sections, steps, rounds):
    measured.append(sorted(sections))
    return [{"workload": "w", "method": m, "update_ms": 1.0, "step_ms": 2.0,
             "state_bytes": 8} for m in sections]
  monkeypatch.setattr(suite.overhead, "measure", measure)
  workload = ml_collections.ConfigDict(dict(
      config="mnist1d_mlp:debug", eval_every=10, target_fraction=0.9))
  methods = ml_collections.ConfigDict({
      "adamw": dict(optim={"name": "adamw"}, learning_rates=(1e-3,))})
  summary = {"adamw": {"learning_rate": 1e-3}}
  path = str(tmp_path / "trials.jsonl")
  timed = lambda: suite.update_overhead(workload, methods, summary, "adamw",
                                        1, journal.Journal(path), "w")
  first = timed()
  monkeypatch.setitem(selection.DEFAULTS, "new_option", 0.5)
  assert timed() == first and len(measured) == 1
  with workload.unlocked():
    workload.overrides = {"selection": {"new_option": 0.7}}
  timed()
  assert len(measured) == 2  # a value other than the default counts


def _outcomes(workload_results):
  """What a fake suite decides and measures, per method: not the load
  average and process memory recorded beside it, which are the machine's
  and change from one call to the next."""
  keys = ("learning_rate", "steps_to_target", "seconds_to_target",
          "examples_to_target", "final_accuracy", "step_ms", "total_steps",
          "grid", "sensitivity")
  return {m: {k: s.get(k) for k in keys}
          for m, s in workload_results["summary"].items()}


def _without_load(trials):
  return {m: {lr: [{k: v for k, v in r.items() if k != "load_avg_1m"}
                   for r in runs] for lr, runs in by_lr.items()}
          for m, by_lr in trials.items()}


def test_interrupted_suite_continues_from_its_journal(fakes, monkeypatch,
                                                     tmp_path):
  """A budget of 2.5 fake minutes stops the suite before its fourth trial;
  a second run with the same journal trains only the rest, and its results
  equal those of a run without a journal."""
  from accel.bench import journal  # pylint: disable=g-import-not-at-top
  clock, calls = fakes.Clock(), []
  monkeypatch.setattr(suite.trial_lib, "run_trial",
                      fakes.counting(clock, calls))
  fakes.name_methods()
  workload, methods = fakes.suite((1e-3, 1e-2))
  quiet = lambda *_, **__: None
  # 2 rates x 2 seeds x 2 methods, then 1 sensitivity factor x 2 x 2.
  whole = suite.run_workload("w", workload, methods, [0, 1], "slow",
                             log=quiet, sensitivity=(0.1,))
  assert len(calls) == 12
  path = str(tmp_path / "trials.jsonl")
  first = journal.Journal(path, budget_s=150.0, clock=clock)
  calls.clear()
  with pytest.raises(journal.OutOfTime, match=r"2.5 min spent \(3.0 min\) "
                     r"before w slow lr=0.001 seed=1"):
    suite.run_workload("w", workload, methods, [0, 1], "slow", log=quiet,
                       sensitivity=(0.1,), journal=first)
  assert len(calls) == 3 and first.reused == 0
  # A run killed while writing its next line leaves it cut: it is dropped.
  with open(path, "a") as f:
    f.write('{"key": "abc", "rec')
  again = journal.Journal(path, budget_s=None, clock=clock)
  assert again.stored == 3
  calls.clear()
  resumed = suite.run_workload("w", workload, methods, [0, 1], "slow",
                               log=quiet, sensitivity=(0.1,), journal=again)
  # 12 trials less the 3 stored, less 4 the run has already trained: the
  # sensitivity runs at 0.1 x 1e-2 are the grid's 1e-3 trials, 3 of them
  # the earlier process's (each counted once) and 1 this run's (a repeat).
  assert len(calls) == 5 and again.reused == 3 and again.repeats == 1
  assert _outcomes(resumed) == _outcomes(whole)
  # Equal records, less the machine's load average when each trial ended
  # (a measurement, which moves between the two runs on a busy machine).
  assert _without_load(resumed["trials"]) == _without_load(whole["trials"])
  again.finish()
  assert not os.path.exists(path)
  # A damaged line that is not the last one is an error, not skipped.
  with open(path, "w") as f:
    f.write("not json\n{}\n")
  with pytest.raises(ValueError, match="line 1 is not a journal entry"):
    journal.Journal(path)


def test_maximum_runtime_stops_trials_and_holds_stored_ones_to_it(
    fakes, monkeypatch, tmp_path):
  """At 0.6 train seconds a "slow" trial (10 ms a step) stops at step 60,
  a "fast" one (15 ms) at step 40; records a journal stored without the
  limit are held to it, and give the same results."""
  from accel.bench import journal  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(suite.trial_lib, "run_trial", fakes.trial)
  fakes.name_methods()
  workload, methods = fakes.suite((1e-2,))
  quiet = lambda *_, **__: None
  path = str(tmp_path / "trials.jsonl")
  unlimited = suite.run_workload("w", workload, methods, [0, 1], "slow",
                                 log=quiet, journal=journal.Journal(path))
  assert "stopped_at_steps" not in unlimited["summary"]["slow"]
  with workload.unlocked():
    workload.max_train_s = 0.6
  fresh = suite.run_workload("w", workload, methods, [0, 1], "slow",
                             log=quiet)
  s = fresh["summary"]
  assert s["slow"]["stopped_at_steps"] == [60, 60]
  assert s["fast"]["stopped_at_steps"] == [40, 40]
  # The baseline ends at 0.6 there: target 0.54, which "fast" (twice the
  # speed) reaches at step 30, 0.45 s, and "slow" at step 54 -> 60, 0.6 s.
  assert fresh["target"] == pytest.approx(0.54)
  assert s["slow"]["final_accuracy"]["mean"] == pytest.approx(0.6)
  assert s["fast"]["steps_to_target"]["values"] == [30, 30]
  assert s["slow"]["steps_to_target"]["values"] == [60, 60]
  stored = suite.run_workload("w", workload, methods, [0, 1], "slow",
                              log=quiet, journal=journal.Journal(path))
  assert _outcomes(stored) == _outcomes(fresh)
  assert stored["summary"]["fast"]["stopped_at_steps"] == [40, 40]
  table = tables.markdown({"workloads": {"w": fresh}}, "slow")
  assert ("maximum runtime (AlgoPerf's; final acc is the accuracy there): "
          "w fast (at steps [40, 40] of 100, 0.6 s); w slow (at steps "
          "[60, 60] of 100, 0.6 s).") in table


def _launcher(fakes, monkeypatch, tmp_path, workloads: str):
  """A suite of fake trials (a fake minute each; 4 a workload, all alike)
  over `workloads` (one letter each) with a 5.5-minute budget: (the
  launcher module, run() that runs it once, the trials each run trained,
  its workdir, its report's path)."""
  from accel.bench import journal  # pylint: disable=g-import-not-at-top
  from launch import bench  # pylint: disable=g-import-not-at-top
  clock, calls = fakes.Clock(), []
  monkeypatch.setattr(suite.trial_lib, "run_trial",
                      fakes.counting(clock, calls))
  monkeypatch.setattr(journal.time, "monotonic", clock)
  fakes.name_methods()
  config = tmp_path / "suite.py"
  names = ", ".join(f"{w!r}: w" for w in workloads)
  config.write_text(
      "import ml_collections\n\n"
      "def get_config():\n"
      "  w = dict(config='mnist1d_mlp', eval_every=10, target_fraction=0.9,"
      f" config_dir={_CONFIGS!r}, overrides={{'total_steps': 100}})\n"
      "  return ml_collections.ConfigDict(dict(\n"
      "      baseline='slow', seeds=(0, 1), time_budget_minutes=5.5,\n"
      f"      workloads={{{names}}},\n"
      "      methods={'slow': dict(optim={'name': 'adamw'},"
      " learning_rates=(1e-2,)),\n"
      "               'fast': dict(optim={'name': 'nadamw'},"
      " learning_rates=(1e-2,))}))\n")
  workdir, report_md = tmp_path / "out", tmp_path / "BENCHMARKS.md"

  def run(*extra_flags):
    flags = bench.flags.FLAGS
    flags(["bench", f"--config={config}", f"--workdir={workdir}",
           f"--report={report_md}", *extra_flags])
    try:
      bench.main(["bench"])
    finally:
      flags.unparse_flags()
  return bench, run, calls, workdir, report_md


def test_launcher_stops_at_its_budget_and_the_same_command_continues(
    fakes, monkeypatch, tmp_path):
  _, run, calls, workdir, report_md = _launcher(fakes, monkeypatch,
                                                tmp_path, "ab")
  # 4 trials a workload, a fake minute each: the budget of 5.5 minutes
  # ends the first run in workload b, after its second trial.
  with pytest.raises(SystemExit, match="Stopped: time budget of 5.5 min "
                     r"spent .*not finished: b\. The finished trials are in "
                     ".*run the same command again to continue"):
    run()
  assert len(calls) == 6
  with open(workdir / "results.json") as f:
    stopped = json.load(f)
  assert list(stopped["workloads"]) == ["a"] and "b" in stopped["stopped"]
  assert stopped["trials_from_earlier_run"] == 0
  assert "- **not finished**: time budget of 5.5 min" in (
      report_md.read_text())
  # The budget counts from each run's start: the second run trains the two
  # trials left, finishes and deletes the journal.
  calls.clear()
  run()
  assert len(calls) == 2
  assert not os.path.exists(workdir / "trials.jsonl")
  with open(workdir / "results.json") as f:
    done = json.load(f)
  assert list(done["workloads"]) == ["a", "b"] and "stopped" not in done
  assert done["trials_from_earlier_run"] == 6
  md = report_md.read_text()
  assert "stopped" not in md
  assert "- continued an interrupted run: 6 trials, timings included" in md
  # Workloads a and b are the same fake: the same choices and numbers.
  workloads = done["workloads"]
  assert _outcomes(workloads["b"]) == _outcomes(workloads["a"])


def test_a_replay_of_a_whole_journal_reports_it_and_keeps_it(
    fakes, monkeypatch, tmp_path):
  """A finished suite's journal kept (as in git): --replay_only writes the
  whole report from it and leaves it; the plain command replays it and then
  deletes it, as after any finished suite."""
  _, run, calls, workdir, report_md = _launcher(fakes, monkeypatch,
                                                tmp_path, "a")
  finish = journal_lib.Journal.finish
  monkeypatch.setattr(journal_lib.Journal, "finish", lambda self: None)
  run()  # 4 trials in 4 of the 5.5 fake minutes; the journal kept
  assert len(calls) == 4
  monkeypatch.setattr(journal_lib.Journal, "finish", finish)
  kept = (workdir / "trials.jsonl").read_text()
  (workdir / "results.json").unlink()
  report_md.unlink()
  calls.clear()
  run("--replay_only")
  assert not calls
  assert (workdir / "trials.jsonl").read_text() == kept
  with open(workdir / "results.json") as f:
    replayed = json.load(f)
  assert list(replayed["workloads"]) == ["a"] and "stopped" not in replayed
  assert replayed["trials_from_earlier_run"] == 4
  assert "not finished" not in report_md.read_text()
  run()
  assert not calls and not os.path.exists(workdir / "trials.jsonl")


def test_each_machine_continues_its_own_copy_and_the_first_finished_counts(
    fakes, monkeypatch, tmp_path, capsys):
  """Machine A stops in workload b; machine B takes a from the journal,
  starts its own copy of b, finishes it and stops in c; a replay on B
  trains nothing; A then reads B's b, starts its own c and finishes. Each
  workload's trials all ran on one machine, and the report names them."""
  bench, run_once, calls, workdir, report_md = _launcher(
      fakes, monkeypatch, tmp_path, "abc")
  machine = ["cpu A"]
  monkeypatch.setattr(bench.host, "describe", lambda *_: machine[0])

  def run(on, *extra_flags):
    machine[0] = on
    calls.clear()
    run_once(*extra_flags)

  with pytest.raises(SystemExit, match="not finished: b, c"):
    run("cpu A")  # a, then 2 of b's 4 trials
  assert len(calls) == 6
  with pytest.raises(SystemExit, match="not finished: c"):
    run("cpu B")  # b's 4 trials afresh, then 2 of c's
  assert len(calls) == 6
  trials = journal_lib.Journal(str(workdir / "trials.jsonl"))
  assert trials.copies("b") == {"cpu A": 2, "cpu B": 4}
  assert (trials.finished_by("a"), trials.finished_by("b")) == ("cpu A",
                                                                "cpu B")
  # A replay trains nothing, names what each machine holds of c, and
  # succeeds (it did what it was asked).
  capsys.readouterr()
  with pytest.raises(SystemExit) as replay:
    run("cpu B", "--replay_only")
  assert replay.value.code == 0 and not calls
  assert re.search(r"Stopped: replayed the journal only \(--replay_only, "
                   r"nothing trained\) on .*; not finished: c \(trials "
                   r"stored: 2 on cpu B\)\.", capsys.readouterr().out)
  with open(workdir / "results.json") as f:
    partial = json.load(f)
  assert "--replay_only" not in partial["command"]
  assert partial["trials_from_earlier_run"] == 8  # a's and b's, not c's
  assert {w: r["machine"] for w, r in partial["workloads"].items()} == {
      "a": "cpu A", "b": "cpu B"}
  assert "- **not finished**: replayed the journal only" in (
      report_md.read_text())
  run("cpu A")
  assert len(calls) == 4  # c afresh; b from B's copy
  assert not os.path.exists(workdir / "trials.jsonl")
  with open(workdir / "results.json") as f:
    done = json.load(f)
  assert "stopped" not in done and done["machine"] == "cpu A"
  assert [r["machine"] for r in done["workloads"].values()] == [
      "cpu A", "cpu B", "cpu A"]
  assert ("- machines (each workload's trials all ran on one): a on cpu A; "
          "b on cpu B; c on cpu A") in report_md.read_text()


def test_a_run_stopped_before_replaying_finished_workloads_keeps_them(
    fakes, monkeypatch, tmp_path):
  """Machine A stops in b, B finishes c (a from the journal, b left to A);
  A, again, stops in b before it reaches c: its results keep B's c, named as
  carried, in the suite's order; a change of c's entry, or of the
  suite-wide settings, does not carry c."""
  bench, run_once, calls, workdir, report_md = _launcher(
      fakes, monkeypatch, tmp_path, "abc")
  machine = ["cpu A"]
  monkeypatch.setattr(bench.host, "describe", lambda *_: machine[0])

  def run(on, *extra_flags):
    machine[0] = on
    calls.clear()
    with pytest.raises(SystemExit, match="Stopped"):
      run_once(*extra_flags)
    with open(workdir / "results.json") as f:
      return json.load(f)

  run("cpu A")  # a, then 2 of b's 4 trials
  # A's copy of b marked finished while it lacks trials (as after a change
  # to b's trial config): B leaves b to A and runs c.
  with open(workdir / "trials.jsonl", "a") as f:
    f.write(json.dumps({"finished": "b", "machine": "cpu A"}) + "\n")
  b_run = run("cpu B")
  assert list(b_run["workloads"]) == ["a", "c"]  # c on B
  assert b_run["stopped"] == ("not finished: b waits for the machine that "
                              "finished it, cpu A")
  snapshot = tmp_path / "snapshot"
  shutil.copytree(workdir, snapshot)
  # B ran the same config from another checkout (a worktree elsewhere).
  _edit_results(workdir, lambda r: r.update(
      checkout="/elsewhere/accel", config=json.loads(json.dumps(
          r["config"]).replace(bench._CHECKOUT + "/", "/elsewhere/accel/"))))
  assert "/elsewhere/accel/configs" in (workdir / "results.json").read_text()
  # A's budget of half a minute ends b after one more trial.
  stopped = run("cpu A", "--time_budget_minutes=0.5")
  assert len(calls) == 1
  assert stopped["stopped"].endswith("not finished: b")
  assert list(stopped["workloads"]) == ["a", "c"]
  assert stopped["carried_from_earlier_invocation"] == ["c"]
  assert stopped["workloads"]["c"]["machine"] == "cpu B"
  assert ("- c: the previous invocation's results (same config, from the "
          "same journal's trials); this one stopped before it replayed "
          "them") in report_md.read_text()
  # Where the earlier invocation ran c with another entry (c resized), c
  # is not carried; another workload's entry (b's) does not matter to c.
  for changed, carried in (("c", []), ("b", ["c"])):
    shutil.rmtree(workdir)
    shutil.copytree(snapshot, workdir)
    _edit_results(workdir, lambda r: r["config"]["workloads"][
        changed]["overrides"].update(total_steps=50))
    stopped = run("cpu A", "--time_budget_minutes=0.5")
    assert list(stopped["workloads"]) == ["a"] + carried
    assert stopped.get("carried_from_earlier_invocation", []) == carried
  # Where the earlier invocation ran other suite-wide settings, nothing is
  # carried.
  shutil.rmtree(workdir)
  shutil.copytree(snapshot, workdir)
  _edit_results(workdir, lambda r: r["config"].update(seeds=[7]))
  stopped = run("cpu A", "--time_budget_minutes=0.5")
  assert list(stopped["workloads"]) == ["a"]
  assert "carried_from_earlier_invocation" not in stopped


def _edit_results(workdir, edit) -> None:
  with open(workdir / "results.json") as f:
    results = json.load(f)
  edit(results)
  with open(workdir / "results.json", "w") as f:
    json.dump(results, f)


def test_schedules_are_part_of_the_grid_and_the_sweep_is_timed(
    fakes):
  ran = fakes.record(lambda c: (c.optim.name, c.optim.get("schedule"),
                                c.optim.learning_rate, c.seed))
  fakes.name_methods()
  workload, methods = fakes.suite((1e-3, 1e-2))
  methods.slow.schedules = ("cosine", "linear")
  out = suite.run_workload("w", workload, methods, [0], "slow",
                           log=lambda *_, **__: None, tuning_seeds=(100,))
  tuning = [r for r in ran if r[0] == "slow" and r[3] == 100]
  assert sorted(tuning) == sorted((("slow", s, lr, 100) for s in (
      "cosine", "linear") for lr in (1e-3, 1e-2)))
  # Linear decay is a quarter faster in the fake: chosen, and reported.
  record = out["tuning"]["methods"]["slow"]
  assert (record["schedule"], record["learning_rate"]) == ("linear", 1e-2)
  assert set(record["grid"]) == {"cosine:0.001", "cosine:0.01",
                                 "linear:0.001", "linear:0.01"}
  assert ("slow", "linear", 1e-2, 0) in ran
  s = out["summary"]["slow"]
  assert s["schedule"] == "linear"
  # Four tuning trials of 100 steps at 0.01 s each; "fast" ran two.
  assert s["sweep_s"] == pytest.approx(4.0)
  assert out["summary"]["fast"]["sweep_s"] == pytest.approx(3.0)
  assert s["seconds_with_sweep"]["values"] == pytest.approx(
      [4.0 + s["seconds_to_target"]["values"][0]])
  assert out["summary"]["fast"]["schedule"] is None
  with pytest.raises(ValueError, match="needs tuning_seeds"):
    suite.run_workload("w", workload, methods, [0], "slow",
                       log=lambda *_, **__: None)


def test_self_tuning_runs_each_method_at_its_default(fakes):
  ran = fakes.record()
  fakes.name_methods()
  workload, methods = fakes.suite((1e-2,))
  with pytest.raises(ValueError, match=r"default_lr \(the learning rate its library defaults to\) "
                     r"for methods \['fast', 'slow'\]"):
    suite.run_workload("w", workload, methods, [0], "slow",
                       log=lambda *_, **__: None, self_tuning=True)
  methods.slow.default_lr = 1e-3
  methods.fast.default_lr = 2e-2
  ran.clear()
  out = suite.run_workload("w", workload, methods, [0, 1], "slow",
                           log=lambda *_, **__: None, self_tuning=True)
  assert sorted(r for r in ran if r[1] != 1e-2) == [
      ("fast", 2e-2, 0), ("fast", 2e-2, 1), ("slow", 1e-3, 0),
      ("slow", 1e-3, 1)]
  st = out["self_tuning"]
  assert st["slow"]["learning_rate"] == 1e-3
  assert st["slow"]["final_accuracy"]["mean"] == pytest.approx(0.5)
  assert st["slow"]["seconds_to_target"]["reached"] == 0
  # At 2e-2 the fake is as fast as at the tuned 1e-2: 0.9 at step 50.
  assert st["fast"]["steps_to_target"]["values"] == [50, 50]


def test_repeat_baseline_trains_its_reported_trials_again(fakes, tmp_path):
  from accel.bench import journal as journal_lib
  ran = fakes.record()
  fakes.name_methods()
  workload, methods = fakes.suite((1e-2,))
  trials = journal_lib.Journal(str(tmp_path / "trials.jsonl"))
  out = suite.run_workload("w", workload, methods, [0, 1], "slow",
                           log=lambda *_, **__: None, journal=trials,
                           repeat_baseline=True)
  # The baseline's two seeds twice (the journal does not serve the repeat
  # from the first run's entries), the other method's once.
  assert sorted(ran) == sorted([("slow", 1e-2, 0), ("slow", 1e-2, 1)] * 2
                               + [("fast", 1e-2, 0), ("fast", 1e-2, 1)])
  again = out["summary"]["slow"]["repeat"]
  assert again["steps_to_target"] == out["summary"]["slow"][
      "steps_to_target"]
  assert "repeat" not in out["summary"]["fast"]


def test_new_options_at_their_defaults_keep_trial_keys(monkeypatch):
  from accel import selection  # pylint: disable=g-import-not-at-top
  from accel.train import config as config_lib  # pylint: disable=g-import-not-at-top
  c = config_lib.load_file("configs/mnist1d_mlp.py")
  before = suite.trial_key("w", "m", c, 10)
  # A new selection option and a new top-level key, both at their defaults.
  monkeypatch.setitem(selection.DEFAULTS, "new_option", 0.5)
  real_base = config_lib.base_config

  def base_config():
    b = real_base()
    b.new_key = 3
    return b
  monkeypatch.setattr(config_lib, "base_config", base_config)
  with c.unlocked():
    c.selection.new_option = 0.5
    c.new_key = 3
  assert suite.trial_key("w", "m", c, 10) == before
  c.selection.new_option = 0.7  # a value other than the default counts
  assert suite.trial_key("w", "m", c, 10) != before
  c.selection.new_option = 0.5
  c.new_key = 4
  assert suite.trial_key("w", "m", c, 10) != before
  c.new_key = 3
  assert suite.trial_key("w", "m", c, 10, repeat=1) != suite.trial_key(
      "w", "m", c, 10)
