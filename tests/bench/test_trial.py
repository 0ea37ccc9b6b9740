"""One benchmark trial: first reach of a target, a real trial's timing
fields and curve, its maximum runtime, and what it counts as forwarded
examples."""

import ml_collections
import pytest

from accel.bench import trial as time_to_target
from accel.bench import trial_configs


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


def test_cut_stops_a_record_at_the_first_eval_past_the_limit():
  curve = [{"step": 10 * i, "train_s": float(i), "accuracy": a, "loss": l}
           for i, a, l in ((1, 0.5, 2.0), (2, 0.8, 1.0), (3, 0.7, 1.5),
                           (4, 0.9, 0.5))]
  record = {"curve": curve, "final_accuracy": 0.9, "final_loss": 0.5,
            "best_accuracy": 0.9, "steps": 40, "step_ms": 100.0}
  cut = time_to_target.cut(record, 2.5)
  assert [p["step"] for p in cut["curve"]] == [10, 20, 30]
  assert (cut["final_accuracy"], cut["final_loss"], cut["best_accuracy"],
          cut["steps"], cut["stopped_at_s"]) == (0.7, 1.5, 0.8, 30, 2.5)
  assert cut["step_ms"] == 100.0
  assert time_to_target.cut(cut, 2.5) == cut  # held to it twice: the same
  # At exactly the limit, that evaluation is the last one.
  assert time_to_target.cut(record, 2.0)["steps"] == 20
  assert time_to_target.cut(record, 4.0)["stopped_at_s"] == 4.0
  # Never got there, or no limit: unchanged.
  assert time_to_target.cut(record, 4.5) is record
  assert time_to_target.cut(record, None) is record


@pytest.mark.slow
def test_real_trial_reports_timings_and_curve(tmp_path):
  from accel.bench import journal  # pylint: disable=g-import-not-at-top
  c = trial_configs.trial_config(ml_collections.ConfigDict(dict(
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
  # XLA counts the step's FLOPs; a CPU has no peak in the table: no MFU.
  assert r["flops_per_step"] > 0 and r["mfu"] is None
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
  assert r["stopped_at_s"] is None
  # A maximum runtime shorter than the first evaluation: it stops there.
  short = time_to_target.run_trial(c, eval_every=10, target=0.0,
                                   max_train_s=1e-6)
  assert [p["step"] for p in short["curve"]] == [10]
  assert short["stopped_at_s"] == 1e-6 and short["steps"] == 10
  assert short["final_accuracy"] == short["curve"][0]["accuracy"]
  assert time_to_target.cut(r, 1e-6)["curve"] == r["curve"][:1]


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
