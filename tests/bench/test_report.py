"""The report of a suite's results: figures, conclusions, the performance
profile, other stored runs."""

import json
import os

import numpy as np
import pytest

from accel.bench import profiles
from accel.bench import report
from accel.bench import rulesets
from accel.bench import suite
from accel.bench import tables


def test_report_draws_figures_and_states_conclusions(fakes, monkeypatch,
                                                    tmp_path):
  from accel.bench import report  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(suite.trial_lib, "run_trial", fakes.trial)
  fakes.name_methods()
  workload, methods = fakes.suite((1e-2,))
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
  # Identical fake seeds: the interval is the ratio itself.
  assert "- **fast**: faster on w (0.83x [0.83, 0.83])." in md
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
  assert "- **fast**: faster on v (0.83x [0.83, 0.83])." in section
  assert "| v | 0.9000 | fast | 0.01 | 50 ± 0 | 0.56 |" in section
  assert "![curves_v.png](gpu_run/curves_v.png)" in section


def test_report_has_both_rulesets_split_by_family(fakes, monkeypatch,
                                                 tmp_path):
  monkeypatch.setattr(suite.trial_lib, "run_trial", fakes.trial)
  fakes.name_methods()
  workload, methods = fakes.suite((1e-3, 1e-2))
  for m in methods.values():
    m.default_lr = 1e-3
  run = lambda data: suite.run_workload(
      "w", workload, methods, [0, 1], "slow", log=lambda *_, **__: None,
      tuning_seeds=(100,), self_tuning=True, meta_training_data=data)
  results = {"command": "c", "date": "today", "machine": "test",
             "config": {"seeds": [0, 1], "tuning_seeds": [100]},
             "workloads": {"seen": run({"mnist1d"}), "new": run({"digits"})}}
  assert results["workloads"]["seen"]["family"]["family"] == "meta_training"
  assert results["workloads"]["new"]["family"]["family"] == "held_out"
  md = report.benchmarks_md(results, "slow", [], str(tmp_path))
  order = [md.index(h) for h in (
      "### external tuning, held-out workloads",
      "### external tuning, meta-training family",
      "### self-tuning, held-out workloads",
      "### self-tuning, meta-training family")]
  assert order == sorted(order)
  held_out = md[order[0]:order[1]]
  assert "- **fast**: faster on new (0.83x [0.83, 0.83])." in held_out
  assert "seen" not in held_out
  # Self-tuning: both at the default 1e-3 (half speed); "fast" reaches 0.9
  # at step 90 of 100 (1.35 s), "slow" never does; each tuned method also
  # enters with its sweep (two tuning trials of 1.5 s or 1.0 s).
  st = md[order[2]:order[3]]
  assert "- **fast**: faster nowhere; reaches the target on every seed " \
         "where slow misses some: new (1.35 s)." in st
  assert "- **fast+sweep**: faster nowhere; reaches the target on every " \
         "seed where slow misses some: new (3.75 s)." in st
  assert "| self-tuning | fast | 1.000 | 1.000 | 1.000 |" in md
  # Scores: slow is 0.9 / 0.75 = 1.2x the fastest: (4 - 1.2) / 3; with its
  # sweep (2 x 1.0 s + 0.9 s) 2.15x self-tuned fast's 1.35 s.
  assert "| external tuning | slow | 0.933 | 0.933 | 0.933 |" in md
  assert "| self-tuning | slow+sweep | 0.617 | 0.617 | 0.617 |" in md
  assert "- new: held out: no meta-training task uses 'mnist1d'" in md
  assert "| new | fast+sweep | - | 3.75 ± 0.00 | - | - |" in md


def test_performance_profile_counts_workloads_within_tau():
  from accel.bench import report  # pylint: disable=g-import-not-at-top
  t = lambda mean: {"seconds_to_target": {"mean": mean, "reached": 1,
                                          "values": [mean]}}
  results = {"workloads": {
      "w1": {"summary": {"a": t(1.0), "b": t(2.0), "c": t(None)}},
      "w2": {"summary": {"a": t(3.0), "b": t(1.0), "c": t(None)}}}}
  taus = np.array([1.0, 1.99, 2.0, 3.0])
  prof = profiles.curves(rulesets.times(results, rulesets.EXTERNAL), taus)
  np.testing.assert_allclose(prof["a"], [0.5, 0.5, 0.5, 1.0])
  np.testing.assert_allclose(prof["b"], [0.5, 0.5, 1.0, 1.0])
  np.testing.assert_allclose(prof["c"], [0, 0, 0, 0])


def test_scores_are_the_area_under_the_profile():
  times = {"w1": {"a": 1.0, "b": 2.0, "c": float("inf")},
           "w2": {"a": 3.0, "b": 1.0, "c": float("inf")}}
  s = profiles.scores(times)
  # a: ratios 1 and 3 -> (3/3 + 1/3) / 2; b: 2 and 1 -> (2/3 + 1) / 2.
  assert s == pytest.approx({"a": 2 / 3, "b": 5 / 6, "c": 0.0})
  # The closed form is the integral of the step function.
  taus = np.linspace(1.0, 4.0, 30001)
  for m, rho in profiles.curves(times, taus).items():
    assert np.trapezoid(rho, taus) / 3.0 == pytest.approx(s[m], abs=1e-3)
  # A method absent from a workload counts as never reaching its target.
  assert profiles.performance_ratios({"w": {"a": 1.0}, "v": {"b": 2.0}})[
      "a"] == [1.0, float("inf")]


def test_a_repeat_of_the_same_suite_gives_the_baselines_spread(tmp_path):
  stats = lambda v: {"mean": None if None in v else sum(v) / len(v),
                     "values": v, "reached": sum(x is not None for x in v)}
  row = lambda secs, steps: {"seconds_to_target": stats(secs),
                             "steps_to_target": stats(steps)}
  run = lambda secs, steps: {
      "config": {"seeds": [0, 1]}, "date": "d", "machine": "m",
      "workloads": {"w": {"summary": {"adamw": row(secs, steps)}}}}
  lines = report.run_to_run(run([1.1, 1.3], [10, 10]),
                            run([1.0, 1.0], [10, 10]), "adamw")
  assert lines == ["- w: 1.20x the earlier run's seconds; steps to target "
                   "identical"]
  lines = report.run_to_run(run([1.0, None], [10, None]),
                            run([1.0, 1.0], [10, 20]), "adamw")
  assert lines == ["- w: a target missed in one run; steps to target "
                   "[10, None] against [10, 20]"]
  # Only a run of the same config is a repeat.
  other = run([1.0, 1.0], [10, 10])
  assert report._repeats(run([1.0, 1.0], [10, 10]), ((other, "x"),),
                         "adamw")[0] == "## Run-to-run spread of `adamw`"
  other["config"] = {"seeds": [0]}
  assert report._repeats(run([1.0, 1.0], [10, 10]), ((other, "x"),),
                         "adamw") == []


def test_a_repeat_within_the_run_gives_the_baselines_spread():
  stats = lambda v: {"mean": sum(v) / len(v), "values": v,
                     "reached": len(v)}
  row = {"seconds_to_target": stats([1.0, 1.0]),
         "steps_to_target": stats([10, 10]),
         "repeat": {"seconds_to_target": stats([1.1, 1.3]),
                    "steps_to_target": stats([10, 10])}}
  results = {"config": {}, "workloads": {"w": {"summary": {"adamw": row}}}}
  assert report.within_run(results, "adamw") == [
      "- w: 1.20x the first time's seconds; steps to target identical"]
  section = report._repeats(results, (), "adamw")
  assert section[0] == "## Run-to-run spread of `adamw`"
  assert section[-2] == report.within_run(results, "adamw")[0]


def test_a_rate_tuned_at_the_edge_of_its_grid_is_flagged():
  grid = {f"{s}:{lr}": {} for s in ("cosine", "linear")
          for lr in (1e-3, 1e-2, 1e-1)}
  w = lambda lr: {"tuning": {"methods": {"m": {"learning_rate": lr,
                                               "grid": grid}}},
                  "summary": {"m": {"learning_rate": lr}}}
  assert tables.grid_edge(w(1e-1), "m") == "top"
  assert tables.grid_edge(w(1e-3), "m") == "bottom"
  assert tables.grid_edge(w(1e-2), "m") is None
  assert tables.grid_edge({"tuning": None}, "m") is None
  assert "m on wl (top: 0.1)." in report.grid_edges(
      {"workloads": {"wl": w(1e-1), "other": w(1e-2)}})[0]
  assert report.grid_edges({"workloads": {"other": w(1e-2)}}) == []


def test_a_run_without_default_rate_runs_has_no_self_tuning_ruleset():
  stats = {"mean": 1.0, "values": [1.0], "reached": 1}
  w = {"summary": {"adamw": {"seconds_to_target": stats,
                             "seconds_with_sweep": stats}},
       "self_tuning": None}
  results = {"workloads": {"w": w}}
  assert rulesets.has(results, rulesets.EXTERNAL)
  assert not rulesets.has(results, rulesets.SELF_TUNING)
  w["self_tuning"] = {"adamw": {"seconds_to_target": stats}}
  assert rulesets.has(results, rulesets.SELF_TUNING)


def test_conclusions_against_the_best_tuned_peer_name_it_per_workload():
  def stats(values):
    reached = [v for v in values if v is not None]
    return {"seconds_to_target": {
        "values": values, "reached": len(reached),
        "mean": float(np.mean(values)) if len(reached) == len(values)
        else None}}
  # On "a" NAdamW is the fastest peer (Muon misses a seed, so it is no
  # bar); on "b" no peer reaches the target on every seed.
  a = {"summary": {"adamw": stats([10.0, 10.0, 10.0]),
                   "nadamw": stats([5.0, 5.0, 5.0]),
                   "muon": stats([1.0, None, 1.0]),
                   "mine": stats([2.5, 2.5, 2.5])}}
  b = {"summary": {"adamw": stats([None, 1.0, 1.0]),
                   "mine": stats([3.0, 3.0, 3.0])}}
  results = {"workloads": {"a": a, "b": b}}
  assert rulesets.best_peer(a) == "nadamw"
  assert rulesets.best_peer(b) is None
  (line,) = report.conclusions(results, None)
  assert line.startswith("- **mine**: faster on a (vs nadamw: 0.50x")
  assert "where every peer misses some: b (3.00 s)" in line
  # Against AdamW alone the same method is faster by 4x, and the peers
  # get lines of their own.
  by_adamw = report.conclusions(results, "adamw")
  assert any(l.startswith("- **mine**: faster on a (0.25x") for l in by_adamw)
  assert any(l.startswith("- **nadamw**") for l in by_adamw)
