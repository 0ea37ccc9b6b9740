"""The report of a suite's results: figures, conclusions, the performance
profile, other stored runs."""

import json
import os

import numpy as np
import pytest

from accel.bench import report
from accel.bench import suite


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
