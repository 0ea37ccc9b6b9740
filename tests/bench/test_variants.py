"""A changed suite method against the suite's stored trials: rows read on
the suite's target, misses, worst class, the stored workload's lookup, and
a real (tiny) run."""

import json

import ml_collections
import pytest

from accel.bench import variants


def _run(accuracies, step_ms, worst=None):
  curve = [{"step": 10 * (i + 1), "train_s": float(i + 1), "accuracy": a}
           for i, a in enumerate(accuracies)]
  if worst is not None:
    curve[-1]["worst_class_accuracy"] = worst
  return {"curve": curve, "final_accuracy": accuracies[-1],
          "step_ms": step_ms}


def test_row_reads_each_run_on_the_target_and_keeps_misses():
  runs = [_run([0.3, 0.6, 0.7], 10.0, worst=0.5),
          _run([0.3, 0.4, 0.5], 20.0, worst=0.2)]
  r = variants.row("changed", runs, 0.6)
  assert r == {"variant": "changed", "steps_to_target": [20, None],
               "seconds_to_target": [2.0, None],
               "final_accuracy": [0.7, 0.5], "worst_class": [0.5, 0.2],
               "step_ms": 15.0}
  assert variants.ratio_text(r["seconds_to_target"], 4.0) == "miss on a seed"
  assert variants.ratio_text([2.0, 4.0], 4.0) == "0.75"
  # Curves without a worst class (an LM): no such field, not zeros.
  assert "worst_class" not in variants.row("lm", [_run([0.7], 5.0)], 0.6)


def test_stored_workload_names_what_the_results_have(tmp_path):
  path = tmp_path / "results.json"
  # The fields launch/bench.py writes (report.load_results checks them).
  path.write_text(json.dumps({
      "command": "c", "date": "d", "machine": "m", "config": {},
      "workloads": {"a": {"target": 0.5}, "b": {"target": 0.7}}}))
  assert variants.stored_workload(str(path), "b") == {"target": 0.7}
  with pytest.raises(ValueError, match=r"'c' is not in .*\['a', 'b'\]"):
    variants.stored_workload(str(path), "c")


@pytest.mark.slow
def test_run_gives_one_trial_per_seed_as_the_suite_runs_them():
  workload = ml_collections.ConfigDict(dict(
      config="mnist1d_mlp:debug", eval_every=10,
      overrides={"total_steps": 20, "eval_max_examples": 128}))
  method = ml_collections.ConfigDict(dict(optim={"name": "adamw"}))
  logged = []
  runs = variants.run(workload, method, 3e-3, (0, 1),
                      log=lambda line, **_: logged.append(line), name="mine")
  assert [[p["step"] for p in r["curve"]] for r in runs] == [[10, 20]] * 2
  assert len(logged) == 2 and logged[0].startswith(
      "mine mine lr=0.003 seed=0:")
  # Different seeds, different runs.
  assert runs[0]["curve"][-1]["loss"] != runs[1]["curve"][-1]["loss"]
  # The workload's maximum runtime holds, as in the suite: stopped at the
  # first evaluation past it.
  with workload.unlocked():
    workload.max_train_s = 1e-9
  (cut,) = variants.run(workload, method, 3e-3, (0,),
                        log=lambda line, **_: None)
  assert [p["step"] for p in cut["curve"]] == [10]
  assert cut["stopped_at_s"] == 1e-9
