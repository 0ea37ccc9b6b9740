"""The notebooks in colabs/ run top to bottom on CPU (small settings) and
are committed without outputs."""

import glob
import json
import os

import nbclient
import nbformat
import pytest

pytestmark = pytest.mark.slow  # end-to-end: runs, binaries, notebooks

COLABS = os.path.join(os.path.dirname(__file__), "..", "colabs")
NOTEBOOKS = sorted(glob.glob(os.path.join(COLABS, "*.ipynb")))


def test_there_are_four_notebooks_committed_without_outputs():
  assert [os.path.basename(p) for p in NOTEBOOKS] == [
      "01_compose_optax.ipynb", "02_batch_selection.ipynb",
      "03_sharding.ipynb", "04_benchmark_report.ipynb"]
  for path in NOTEBOOKS:
    with open(path) as f:
      nb = json.load(f)
    for cell in nb["cells"]:
      if cell["cell_type"] == "code":
        assert cell["outputs"] == [] and cell["execution_count"] is None, (
            path, "".join(cell["source"])[:60])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_on_cpu(path, tmp_path, monkeypatch, one_device_env):
  monkeypatch.setenv("ACCEL_NOTEBOOK_SMALL", "1")
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  # The sharding notebook asks for its own 8 simulated devices; the other
  # flags (conftest's compile-time one) stay.
  monkeypatch.setenv("XLA_FLAGS", one_device_env["XLA_FLAGS"])
  if path.endswith("04_benchmark_report.ipynb"):
    monkeypatch.setenv("ACCEL_RESULTS", _tiny_results(tmp_path))
  nb = nbformat.read(path, as_version=4)
  client = nbclient.NotebookClient(
      nb, timeout=300, kernel_name="python3",
      resources={"metadata": {"path": COLABS}})
  client.execute()
  errors = [o for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]
  assert not errors


def _tiny_results(tmp_path) -> str:
  """A results.json of the harness's shape (two methods, one workload)."""
  def trial(speed):
    curve = [{"step": s, "train_s": 0.01 * s, "accuracy": min(1.0, speed * s
                                                                / 100)}
             for s in (25, 50, 75, 100)]
    return {"curve": curve}

  def summary(lr, seconds, ratio):
    stats = {"mean": seconds, "std": 0.0, "reached": 1, "values": [seconds]}
    return {"learning_rate": lr, "steps_to_target": stats,
            "steps_to_target_ratio": ratio, "seconds_to_target": stats,
            "seconds_to_target_ratio": ratio,
            "final_accuracy": {"mean": 1.0, "std": 0.0, "reached": 1,
                               "values": [1.0]},
            "step_ms": 10.0, "total_steps": 100}
  results = {
      "command": "python launch/bench.py (test)", "date": "today",
      "machine": "test", "config": {"baseline": "adamw", "seeds": [0]},
      "workloads": {"w": {
          "target": 0.9, "budget_steps": 100,
          "summary": {"adamw": summary(0.01, 0.9, 1.0),
                      "fast": summary(0.01, 0.5, 0.56)},
          "trials": {"adamw": {"0.01": [trial(1.0)]},
                     "fast": {"0.01": [trial(2.0)]}}}}}
  path = str(tmp_path / "results.json")
  with open(path, "w") as f:
    json.dump(results, f)
  return path
