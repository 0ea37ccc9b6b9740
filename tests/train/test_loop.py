"""The training run: resume equivalence, errors, outputs, the binary."""

import glob
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from accel import train
from accel.train import config as config_lib

pytestmark = pytest.mark.slow  # end-to-end: runs, binaries, notebooks

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def _params(result):
  return jax.tree.map(np.asarray, result["state"].params)


def test_resume_gives_the_same_parameters_as_one_run(tmp_path, tiny_config):
  straight = train.run(tiny_config(), str(tmp_path / "straight"))
  split = str(tmp_path / "split")
  half = train.run(tiny_config(), split, stop_after=3)  # pre-empted at 3
  assert half["step"] == 3
  resumed = train.run(tiny_config(), split)  # the same command again
  assert resumed["step"] == 8
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6,
                                                       atol=1e-7),
               _params(straight), _params(resumed))
  assert resumed["accuracy"] == pytest.approx(straight["accuracy"])


def test_the_loop_allows_no_implicit_host_device_copy(
    tmp_path, monkeypatch, tiny_config):
  """Under the loop's transfer guard a batch handed over as numpy (an
  implicit copy at the jitted call) is an error, not a silent stall."""
  from accel.train import build as build_lib  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(build_lib.Steps, "train_batch",
                      lambda self, local_batch: dict(local_batch))
  with pytest.raises(Exception, match="Disallowed host-to-device transfer"):
    train.run(tiny_config(), str(tmp_path / "w"))


def test_on_eval_sees_each_evaluation_and_can_stop_the_run_for_good(
    tmp_path, tiny_config):
  seen = []

  def on_eval(step, metrics):
    seen.append((step, metrics["accuracy"]))
    return step >= 4  # a pruner's verdict at the first evaluation

  workdir = str(tmp_path / "w")
  result = train.run(tiny_config(), workdir, on_eval=on_eval)
  assert [s for s, _ in seen] == [4]
  assert result["step"] == 4 and result["stopped_early"]
  assert result["accuracy"] == seen[0][1]  # that evaluation, no other
  with open(os.path.join(workdir, "final_metrics.json")) as f:
    assert json.load(f)["step"] == 4
  # The checkpoint at the stop is saved: the plain command resumes there.
  assert train.run(tiny_config(), workdir)["step"] == 8


def test_finished_run_is_not_trained_again(tmp_path, capsys, tiny_config):
  workdir = str(tmp_path / "w")
  first = train.run(tiny_config(), workdir)
  again = train.run(tiny_config(), workdir)
  assert again["step"] == first["step"] == 8
  assert "Resuming from the checkpoint at step 8" in capsys.readouterr().out


def test_outputs_checkpoints_tensorboard_and_final_metrics(
    tmp_path, tiny_config):
  workdir = str(tmp_path / "w")
  result = train.run(tiny_config(keep_checkpoints=1), workdir)
  steps = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  assert steps == ["8"]  # retention keeps only the newest
  assert glob.glob(os.path.join(workdir, "tensorboard", "events.out.*"))
  with open(os.path.join(workdir, "final_metrics.json")) as f:
    final = json.load(f)
  assert final["step"] == 8 and final["accuracy"] == pytest.approx(
      result["accuracy"])
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  acc = event_accumulator.EventAccumulator(os.path.join(workdir,
                                                        "tensorboard"))
  acc.Reload()
  tags = set(acc.Tags()["scalars"])
  for tag in ("train/loss", "train/accuracy", "train/grad_norm",
              "train/update_norm", "train/param_norm", "train/learning_rate",
              "train/step_time_ms", "train/examples_per_sec", "eval/accuracy",
              "eval/loss"):
    assert tag in tags


def test_meta_attention_run_logs_multipliers_and_an_attention_heat_map(
    tmp_path, tiny_config):
  workdir = str(tmp_path / "w")
  c = tiny_config()
  c.optim = config_lib.optim_section("meta_attention_adamw",
                                     learning_rate=1e-2, learn_groups=True)
  train.run(c, workdir)
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  acc = event_accumulator.EventAccumulator(
      os.path.join(workdir, "tensorboard"), size_guidance={"images": 0})
  acc.Reload()
  assert {"train/meta_lr/multiplier_mean", "train/meta_lr/global_multiplier",
          "train/meta_lr/attention_to_global", "train/meta_lr/level"} <= set(
              acc.Tags()["scalars"])
  images = acc.Images("meta_lr/attention")
  assert [im.step for im in images] == [4, 8]  # each eval and the final one
  assert images[0].width > 100 and images[0].height > 100


def test_checkpoint_from_another_model_is_refused_with_the_difference(
    tmp_path, tiny_config):
  workdir = str(tmp_path / "w")
  train.run(tiny_config(total_steps=4), workdir)
  other = tiny_config()
  other.model.hidden = (32,)
  with pytest.raises(train.CheckpointMismatchError,
                     match=r"(?s)model\.hidden: \[16\] in the checkpoint, "
                     r"\[32\] now.*param_shapes"):
    train.run(other, workdir)


def test_divergence_stops_the_run_naming_the_step(tmp_path, tiny_config):
  c = tiny_config()
  c.optim = config_lib.optim_section("sgd", learning_rate=1e30, momentum=0.0)
  with pytest.raises(FloatingPointError, match=r"is (nan|inf) at step \d+"):
    train.run(c, str(tmp_path / "w"))


def test_unknown_config_key_is_named(tiny_config):
  c = tiny_config()
  c.eval_evry = 3
  with pytest.raises(ValueError, match=r"Unknown config key 'eval_evry'.*"
                     r"'eval_every'"):
    train.validate(c)
  with pytest.raises(ValueError, match=r"Unknown option 'hiden'.*'hidden'"):
    config_lib.model_section("mlp", hiden=(3,))


def test_one_step_on_mock_tfds_data(tmp_path, tiny_config):
  c = tiny_config(total_steps=2, log_every=1, checkpoint_every=0,
                  eval_every=0, batch_size=8, eval_batch_size=8)
  c.optim.warmup_steps = 0
  c.data = config_lib.data_section("tfds", dataset="mnist")
  c.model = config_lib.model_section("cnn", channels=(4,))
  with tfds.testing.mock_data(num_examples=16):
    result = train.run(c, str(tmp_path / "w"))
  assert result["step"] == 2 and 0.0 <= result["accuracy"] <= 1.0


def _binary(*args, cwd, env):
  return subprocess.run(
      [sys.executable, os.path.join(REPO, "launch", "train.py"), *args],
      cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_binary_trains_debug_config_and_rejects_unknown_keys(tmp_path,
                                                            one_device_env):
  config = os.path.join(REPO, "configs", "mnist1d_cnn.py")
  bad = _binary(f"--config={config}:debug", f"--workdir={tmp_path}/b",
                "--config.model.dropot=0.1", cwd=tmp_path,
                env=one_device_env)
  assert bad.returncode != 0
  assert "unknown config key 'dropot'" in bad.stderr
  assert "Did you mean 'dropout'?" in bad.stderr
  ok = _binary(f"--config={config}:debug", f"--workdir={tmp_path}/w",
               "--config.total_steps=6", "--config.model.channels=(8,8)",
               cwd=tmp_path, env=one_device_env)
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert "Final test accuracy:" in ok.stdout
  assert os.path.isdir(os.path.join(tmp_path, "w", "checkpoints", "6"))


def test_evaluation_reports_the_worst_class_accuracy(tmp_path, tiny_config):
  from accel import data, models  # pylint: disable=g-import-not-at-top
  c = tiny_config()
  result = train.run(c, str(tmp_path / "w"))
  source = data.make_source(c.data)
  model = models.make(c.model, source.spec)
  test = source.arrays("test")
  logits = model.apply({"params": result["state"].params}, test["inputs"],
                       train=False)
  correct = np.asarray(logits).argmax(-1) == test["label"]
  per_class = [correct[test["label"] == k].mean()
               for k in np.unique(test["label"])]
  assert result["worst_class_accuracy"] == pytest.approx(min(per_class))
  assert result["accuracy"] == pytest.approx(correct.mean())
