"""Benchmark bookkeeping: first reach of a target, learning-rate choice,
ratios, and one real trial's timing fields."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from accel.bench import suite
from accel.bench import time_to_target


def test_first_reach_takes_the_first_eval_at_or_above_target():
  curve = [{"step": 10, "train_s": 1.0, "accuracy": 0.5},
           {"step": 20, "train_s": 2.0, "accuracy": 0.8},
           {"step": 30, "train_s": 3.0, "accuracy": 0.7},
           {"step": 40, "train_s": 4.0, "accuracy": 0.9}]
  assert time_to_target.first_reach(curve, 0.8) == {
      "steps_to_target": 20, "seconds_to_target": 2.0,
      "examples_to_target": None}
  assert time_to_target.first_reach(curve, 0.95) == {
      "steps_to_target": None, "seconds_to_target": None,
      "examples_to_target": None}
  curve[1]["examples"] = 640
  assert time_to_target.first_reach(curve, 0.8)["examples_to_target"] == 640


def _fake_trial(config, *, eval_every):
  """Accuracy rises linearly at a speed set by the method and lr."""
  speed = {"fast": 2.0, "slow": 1.0}[config.optim.name]
  speed *= 0.5 if config.optim.learning_rate < 5e-3 else 1.0
  curve = []
  for step in range(eval_every, config.total_steps + 1, eval_every):
    acc = min(1.0, speed * step / config.total_steps)
    curve.append({"step": step, "train_s": 0.01 * step * (
        1.5 if config.optim.name == "fast" else 1.0), "accuracy": acc,
                  "loss": 1 - acc})
  return {"curve": curve, "final_accuracy": curve[-1]["accuracy"],
          "best_accuracy": curve[-1]["accuracy"], "compile_s": 0.0,
          "steps": curve[-1]["step"],
          "step_ms": 15.0 if config.optim.name == "fast" else 10.0,
          **time_to_target.first_reach(curve, None)}


def _name_fake_methods(monkeypatch):
  """The fake keys on the method: nadamw trials become "fast", the others
  "slow"."""
  real_trial_config = suite.trial_config

  def trial_config(w, m, lr, seed):
    c = real_trial_config(w, m, lr, seed)
    c.optim.name = "fast" if m.optim.name == "nadamw" else "slow"
    return c
  monkeypatch.setattr(suite, "trial_config", trial_config)


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


def test_suite_picks_learning_rates_and_ratios(monkeypatch):
  monkeypatch.setattr(suite.time_to_target, "run_trial", _fake_trial)
  workload, methods = _fake_suite((1e-3, 1e-2))
  _name_fake_methods(monkeypatch)
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
  table = suite.markdown({"workloads": {"w": out}}, "slow")
  assert "| w | 0.9000 | fast | 0.01 | 50 ± 0 | 0.56 |" in table
  assert "| w | slow | 0.01 | 0.5000 ± 0.0000 | 0/2 |" in table


def test_real_trial_reports_timings_and_curve(tmp_path):
  from accel.bench import journal  # pylint: disable=g-import-not-at-top
  c = suite.trial_config(ml_collections.ConfigDict(dict(
      config="mnist1d_mlp:debug", eval_every=10,
      overrides={"total_steps": 20, "eval_max_examples": 128})),
      ml_collections.ConfigDict(dict(optim={"name": "adamw"})), 3e-3, 0)
  r = time_to_target.run_trial(c, eval_every=10, target=0.0)
  assert [p["step"] for p in r["curve"]] == [10, 20]
  assert r["steps_to_target"] == 10
  assert r["curve"][0]["train_s"] <= r["curve"][1]["train_s"]
  assert r["compile_s"] > 0 and r["step_ms"] > 0
  assert [p["examples"] for p in r["curve"]] == [10 * c.batch_size,
                                                 20 * c.batch_size]
  assert r["examples_to_target"] == 10 * c.batch_size
  assert r["memory"]["compiled_mb"] > 0
  assert r["memory"]["process_peak_rss_mb"] > 100  # jax alone is larger
  # The same seed again: the same curve, so the same steps to any target.
  again = time_to_target.run_trial(c, eval_every=10, target=0.0)
  assert [(p["accuracy"], p["loss"]) for p in again["curve"]] == [
      (p["accuracy"], p["loss"]) for p in r["curve"]]
  # A trial's record survives the journal of an interrupted suite exactly.
  path = str(tmp_path / "trials.jsonl")
  stored, _ = journal.Journal(path).run("k", "trial", lambda: r)
  reread, from_file = journal.Journal(path).run("k", "trial", None)
  assert from_file and stored == reread
  assert reread["curve"] == [
      {k: v if k != "train" else {n: float(x) for n, x in v.items()}
       for k, v in p.items()} for p in r["curve"]]
  assert reread["memory"] == r["memory"]


def test_scoring_passes_count_as_forwarded_examples():
  from accel.train import config as config_lib  # pylint: disable=g-import-not-at-top
  c = config_lib.base_config()
  c.batch_size = 32
  assert time_to_target.examples_forwarded(c, 100) == 3200
  c.selection = config_lib.selection_section(scorer="loss", ratio=4,
                                             warmup_steps=50)
  # 100 train batches of 32, and 50 scoring passes over 128 candidates.
  assert time_to_target.examples_forwarded(c, 100) == 3200 + 50 * 128
  assert time_to_target.examples_forwarded(c, 30) == 960


def test_tuning_seeds_pick_the_rate_and_report_only_other_seeds(monkeypatch):
  ran = []

  def trial(config, *, eval_every):
    ran.append((config.optim.name, config.optim.learning_rate, config.seed))
    return _fake_trial(config, eval_every=eval_every)
  monkeypatch.setattr(suite.time_to_target, "run_trial", trial)
  _name_fake_methods(monkeypatch)
  workload, methods = _fake_suite((1e-3, 1e-2))
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


def test_report_draws_figures_and_states_conclusions(monkeypatch, tmp_path):
  from accel.bench import report  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(suite.time_to_target, "run_trial", _fake_trial)
  _name_fake_methods(monkeypatch)
  workload, methods = _fake_suite((1e-2,))
  out = suite.run_workload("w", workload, methods, [0, 1], "slow",
                           log=lambda *_, **__: None)
  results = {"command": "python launch/bench.py", "date": "today",
             "machine": "test", "load_avg_start": (1.0, 1.0, 1.0),
             "load_avg_end": (2.0, 2.0, 2.0),
             "config": {"seeds": [0, 1]}, "workloads": {"w": out}}
  md_path = str(tmp_path / "BENCHMARKS.md")
  figures = report.write_all(results, "slow", str(tmp_path), md_path)
  assert [os.path.basename(f) for f in figures] == ["profile.png",
                                                     "curves_w.png"]
  for f in figures:
    with open(f, "rb") as fh:
      assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
  with open(md_path) as f:
    md = f.read()
  assert "- **fast**: faster on w (0.83x)." in md
  assert "![curves_w.png](curves_w.png)" in md
  assert "| w | 0.9000 | fast | 0.01 | 50 ± 0 | 0.56 |" in md
  assert "# Other suite runs" not in md

  # Another stored run is appended with its own command, conclusions,
  # table and figures; the launcher rebuilds a report from stored results
  # without training, and names a path that holds none.
  other_dir = tmp_path / "gpu_run"
  other_dir.mkdir()
  other = dict(results, command="python launch/bench.py --config gpu.py",
               date="2026-01-02T03:04", machine="one H100",
               config={"seeds": [0, 1], "baseline": "slow"},
               workloads={"v": out})
  with open(other_dir / "results.json", "w") as f:
    json.dump(other, f)
  (other_dir / "curves_v.png").write_bytes(b"\x89PNG")
  results["config"]["baseline"] = "slow"
  with open(tmp_path / "results.json", "w") as f:
    json.dump(results, f)
  from launch import bench  # pylint: disable=g-import-not-at-top
  flags = bench.flags.FLAGS
  with pytest.raises(FileNotFoundError, match="No suite results at .*nowhere"):
    report.load_other_runs((str(tmp_path / "nowhere" / "results.json"),))
  argv = ["bench", f"--workdir={tmp_path}", "--rebuild",
          f"--report={md_path}", f"--also={other_dir / 'results.json'}"]
  flags(argv)
  try:
    bench.main(["bench"])
  finally:
    flags.unparse_flags()
  with open(md_path) as f:
    md = f.read()
  assert "- command: `python launch/bench.py`" in md  # the rebuilt run's
  section = md[md.index("# Other suite runs"):]
  assert "## v (2026-01-02)" in section
  assert "- command: `python launch/bench.py --config gpu.py`" in section
  assert "- machine: one H100" in section
  assert "- **fast**: faster on v (0.83x)." in section
  assert "| v | 0.9000 | fast | 0.01 | 50 ± 0 | 0.56 |" in section
  assert "![curves_v.png](gpu_run/curves_v.png)" in section


def test_performance_profile_counts_workloads_within_tau():
  from accel.bench import report  # pylint: disable=g-import-not-at-top
  t = lambda mean: {"seconds_to_target": {"mean": mean, "reached": 1,
                                          "values": [mean]}}
  results = {"workloads": {
      "w1": {"summary": {"a": t(1.0), "b": t(2.0), "c": t(None)}},
      "w2": {"summary": {"a": t(3.0), "b": t(1.0), "c": t(None)}}}}
  taus = np.array([1.0, 1.99, 2.0, 3.0])
  prof = report.profile_curves(results, taus)
  np.testing.assert_allclose(prof["a"], [0.5, 0.5, 0.5, 1.0])
  np.testing.assert_allclose(prof["b"], [0.5, 0.5, 1.0, 1.0])
  np.testing.assert_allclose(prof["c"], [0, 0, 0, 0])


def test_unknown_override_is_named():
  with pytest.raises(ValueError, match="'totl_steps' is not a key"):
    suite.load_config("mnist1d_mlp", {"totl_steps": 5})


def test_method_overrides_batch_multiplier_and_matched_wallclock(
    monkeypatch):
  workload = ml_collections.ConfigDict(dict(
      config="mnist1d_mlp", eval_every=10, target_fraction=0.9,
      overrides={"total_steps": 100}))
  big = ml_collections.ConfigDict(dict(
      optim={"name": "adamw"}, batch_multiplier=4,
      overrides={"selection": {"scorer": "loss", "ratio": 2.0}}))
  c = suite.trial_config(workload, big, 1e-3, 0)
  assert c.batch_size == 4 * suite.load_config("mnist1d_mlp", {}).batch_size
  assert c.selection.scorer == "loss" and c.selection.ratio == 2.0
  # "same_time" gets the steps that fit in "fast"'s time (15 ms/step) at
  # the baseline's 10 ms/step: 150.
  seen = []

  def fake(config, *, eval_every):
    seen.append(config.total_steps)
    return _fake_trial(config, eval_every=eval_every)
  monkeypatch.setattr(suite.time_to_target, "run_trial", fake)
  _name_fake_methods(monkeypatch)
  methods = ml_collections.ConfigDict({
      "base": dict(optim={"name": "adamw"}, learning_rates=(1e-2,)),
      "fast": dict(optim={"name": "nadamw"}, learning_rates=(1e-2,)),
      "same_time": dict(optim={"name": "adamw"}, learning_rates=(1e-2,),
                        match_wallclock_of="fast")})
  out = suite.run_workload("w", workload, methods, [0], "base",
                           log=lambda *_, **__: None)
  assert seen == [100, 100, 150]
  assert out["summary"]["same_time"]["total_steps"] == 150


def test_scaling_points_train_alike_and_compare_with_one_device():
  from accel.bench import scaling  # pylint: disable=g-import-not-at-top
  from accel.train import config as config_lib  # pylint: disable=g-import-not-at-top
  c = config_lib.load_file("configs/mnist1d_mlp.py:debug")
  one = scaling.measure(c, devices=1, steps=3, warmup=1)
  fsdp = scaling.measure(c, devices=4, layout="fsdp", steps=3, warmup=1)
  assert (one["replicated_share"], fsdp["devices"]) == (1.0, 4)
  assert fsdp["replicated_share"] < 0.5  # the weights are split 4 ways
  # The same batches on both meshes: the timed steps trained alike.
  assert fsdp["final_loss"] == pytest.approx(one["final_loss"], rel=1e-4)
  table = scaling.markdown([one, fsdp], "t")
  ratio = fsdp["examples_per_s"] / one["examples_per_s"]
  assert f"| 4 | fsdp | float32 | {fsdp['step_ms']:.2f} |" in table
  assert f"| {ratio:.2f}x |" in table and "| 1.00x |" in table
  with pytest.raises(ValueError, match="'tensor'; expected 'data' or"):
    scaling.layout_mesh("tensor", 2)


@pytest.mark.parametrize("name", ["cpu.py", "cpu.py:full", "cpu.py:more",
                                  "gpu.py", "gpu.py:all",
                                  "gpu.py:workload=recall_lm",
                                  "gt_heldout.py", "meta_attention.py",
                                  "selection.py"])
def test_every_bench_config_gives_valid_trials(name):
  """Each workload x method of a shipped bench config resolves to a train
  config that validates (a typo there would only fail hours into a run)."""
  from accel import data  # pylint: disable=g-import-not-at-top
  from accel.data import selection  # pylint: disable=g-import-not-at-top
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
        c = suite.trial_config(workload, method, lr, 0)
        config_lib.validate(c)
      # What only the data set can tell: a scorer that needs class labels
      # on a language-model task.
      key = c.data.to_json()
      if key not in specs:
        specs[key] = data.make_source(c.data).spec
      selection.check_task(c.selection, specs[key])


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


def test_update_overhead_times_each_optimizer_at_its_rate():
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
  rows = suite.update_overhead(workload, methods, summary, "adamw", rounds=1)
  # The selecting method's update is AdamW's: not timed twice.
  assert [r["method"] for r in rows] == ["adamw", "lion"]
  assert rows[0]["update_ratio"] == 1.0 and rows[0]["step_ratio"] == 1.0
  assert all(r["update_ms"] > 0 and r["step_ms"] > 0 for r in rows)
  assert {r["steps_per_timing"] for r in rows} == {suite.OVERHEAD_STEPS}
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


def test_overhead_programs_run_the_given_number_of_steps():
  """The timed step program is `steps` real train steps (the state's step
  counter advances by that many), and the update program `steps` updates."""
  from accel.bench import overhead  # pylint: disable=g-import-not-at-top
  c = suite.load_config("mnist1d_mlp:debug", {})
  upd, stp, nbytes = overhead._programs(  # pylint: disable=protected-access
      c, ml_collections.ConfigDict({"name": "adamw", "learning_rate": 1e-3}),
      steps=3)
  state = jax.block_until_ready(stp())
  assert int(state.step) == 3
  _, opt_state = upd()
  assert int(opt_state[0].count) == 3  # AdamW's scale_by_adam counter
  assert nbytes > 0


class _Clock:
  """A clock the fake trials advance: one minute per trial."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def _counting_fake(clock, calls):
  def fake(config, *, eval_every):
    calls.append((config.optim.name, config.optim.learning_rate,
                  config.seed))
    clock.now += 60.0
    return _fake_trial(config, eval_every=eval_every)
  return fake


def test_interrupted_suite_continues_from_its_journal(monkeypatch, tmp_path):
  """A budget of 2.5 fake minutes stops the suite before its fourth trial;
  a second run with the same journal trains only the rest, and its results
  equal those of a run without a journal."""
  from accel.bench import journal  # pylint: disable=g-import-not-at-top
  clock, calls = _Clock(), []
  monkeypatch.setattr(suite.time_to_target, "run_trial",
                      _counting_fake(clock, calls))
  _name_fake_methods(monkeypatch)
  workload, methods = _fake_suite((1e-3, 1e-2))
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
  assert resumed["summary"] == whole["summary"]
  assert resumed["trials"] == whole["trials"]
  again.finish()
  assert not os.path.exists(path)
  # A damaged line that is not the last one is an error, not skipped.
  with open(path, "w") as f:
    f.write("not json\n{}\n")
  with pytest.raises(ValueError, match="line 1 is not a journal entry"):
    journal.Journal(path)


def test_launcher_stops_at_its_budget_and_the_same_command_continues(
    monkeypatch, tmp_path):
  from accel.bench import journal  # pylint: disable=g-import-not-at-top
  from launch import bench  # pylint: disable=g-import-not-at-top
  clock, calls = _Clock(), []
  monkeypatch.setattr(suite.time_to_target, "run_trial",
                      _counting_fake(clock, calls))
  monkeypatch.setattr(journal.time, "monotonic", clock)
  _name_fake_methods(monkeypatch)
  config = tmp_path / "suite.py"
  config.write_text(
      "import ml_collections\n\n"
      "def get_config():\n"
      "  w = dict(config='mnist1d_mlp', eval_every=10, target_fraction=0.9,"
      " overrides={'total_steps': 100})\n"
      "  return ml_collections.ConfigDict(dict(\n"
      "      baseline='slow', seeds=(0, 1), time_budget_minutes=5.5,\n"
      "      workloads={'a': w, 'b': w},\n"
      "      methods={'slow': dict(optim={'name': 'adamw'},"
      " learning_rates=(1e-2,)),\n"
      "               'fast': dict(optim={'name': 'nadamw'},"
      " learning_rates=(1e-2,))}))\n")
  workdir = tmp_path / "out"
  flags = bench.flags.FLAGS

  report_md = tmp_path / "BENCHMARKS.md"

  def run():
    flags(["bench", f"--config={config}", f"--workdir={workdir}",
           f"--report={report_md}"])
    try:
      bench.main(["bench"])
    finally:
      flags.unparse_flags()

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
  assert "- **stopped at its time budget**: time budget of 5.5 min" in (
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
  assert done["workloads"]["b"]["summary"] == done["workloads"]["a"][
      "summary"]
