"""Faults and bad input, tried as a new user would: each gets a short, clear
answer, and no fault loses work (corrupt checkpoints, a full disk, SIGTERM,
Ctrl-C, a refused resume, a resumed TensorBoard log)."""

import errno
import json
import os
import signal
import subprocess
import sys
import threading

import jax
import numpy as np
import pytest

from accel import errors
from accel import train
from accel.train import build as build_lib
from accel.train import checkpoint

pytestmark = pytest.mark.slow  # end-to-end: runs and binaries

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def _faults_config(tiny_config):
  """12 steps, no evaluation, checkpoints at 4 and 8."""
  def make(**overrides):
    c = tiny_config(**{"total_steps": 12, "eval_every": 0, **overrides})
    c.model.dropout = 0.0
    return c
  return make


def _params(result):
  return jax.tree.map(np.asarray, result["state"].params)


def _same(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6,
                                                       atol=1e-7), a, b)


def _at_batch(monkeypatch, n, action):
  """Runs `action()` when the loop asks for its n-th batch (counted from 1
  in this process)."""
  real = build_lib.Steps.train_batch
  count = {"n": 0}

  def train_batch(self, local_batch):
    count["n"] += 1
    if count["n"] == n:
      action()
    return real(self, local_batch)
  monkeypatch.setattr(build_lib.Steps, "train_batch", train_batch)


def test_a_corrupt_newest_checkpoint_is_set_aside_and_the_older_restored(
    tmp_path, capsys, tiny_config):
  cfg = _faults_config(tiny_config)
  straight = train.run(cfg(), str(tmp_path / "straight"))
  workdir = str(tmp_path / "w")
  train.run(cfg(), workdir, stop_after=8)  # checkpoints at 4 and 8
  newest = os.path.join(workdir, "checkpoints", "8", "state")
  for root, _, files in os.walk(newest):
    for f in files:
      with open(os.path.join(root, f), "r+b") as fh:
        fh.truncate(max(os.path.getsize(fh.name) // 3, 1))
  resumed = train.run(cfg(), workdir)
  err = capsys.readouterr().err
  assert "Skipped the checkpoint at step 8: it does not restore (" in err
  aside = os.path.join(workdir, checkpoint.CORRUPT_DIR, "8")
  assert f"Moved it to {os.path.abspath(aside)}." in err
  assert os.path.isdir(aside)  # kept, not deleted
  assert resumed["step"] == 12
  _same(_params(resumed), _params(straight))


def test_no_checkpoint_that_restores_is_an_error_not_a_fresh_start(
    tmp_path, tiny_config):
  cfg = _faults_config(tiny_config)
  workdir = str(tmp_path / "w")
  train.run(cfg(), workdir, stop_after=4)
  for root, _, files in os.walk(os.path.join(workdir, "checkpoints", "4")):
    for f in files:
      open(os.path.join(root, f), "w").close()
  with pytest.raises(errors.CheckpointError,
                     match="No checkpoint in .* restores; step 4 set aside"):
    train.run(cfg(), workdir)


def test_a_failed_save_stops_the_run_naming_path_and_cause(
    tmp_path, monkeypatch, tiny_config):
  """A full disk: the save of step 8 fails; the run stops with one message
  and the checkpoint of step 4 is intact and resumes."""
  cfg = _faults_config(tiny_config)
  workdir = str(tmp_path / "w")
  real_save = checkpoint.ocp.CheckpointManager.save

  def save(self, step, *args, **kwargs):
    if step == 8:
      raise OSError(errno.ENOSPC, "No space left on device")
    return real_save(self, step, *args, **kwargs)
  monkeypatch.setattr(checkpoint.ocp.CheckpointManager, "save", save)
  with pytest.raises(errors.CheckpointError) as e:
    train.run(cfg(), workdir)
  message = str(e.value)
  assert message.startswith("Saving the checkpoint at step 8 to ")
  assert os.path.join(workdir, "checkpoints", "8") in message
  assert "failed: no space left on device. The newest intact checkpoint " \
      "is step 4" in message
  assert len(message.splitlines()) == 1
  monkeypatch.undo()
  assert train.run(cfg(), workdir)["step"] == 12


def test_the_cause_of_a_failed_save_is_found_in_the_chain():
  inner = OSError(errno.EROFS, "Read-only file system")
  try:
    try:
      raise inner
    except OSError as e:
      raise RuntimeError("tensorstore: write failed") from e
  except RuntimeError as outer:
    assert checkpoint.save_failure_cause(outer) == "read-only file system"
  assert checkpoint.save_failure_cause(RuntimeError(
      "RESOURCE_EXHAUSTED: write to /x")) == "no space left on device"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers live in the main thread")
def test_sigterm_saves_the_current_step_and_resume_is_exact(
    tmp_path, monkeypatch, tiny_config):
  cfg = _faults_config(tiny_config)
  straight = train.run(cfg(), str(tmp_path / "straight"))
  workdir = str(tmp_path / "w")
  # SIGTERM arrives while step 6 is prepared: the run ends that step, saves
  # it (not a checkpoint step) and stops.
  _at_batch(monkeypatch, 6, lambda: signal.raise_signal(signal.SIGTERM))
  with pytest.raises(errors.RunStopped, match=r"Preempted \(SIGTERM\) at "
                     r"step 6: saved a checkpoint there") as e:
    train.run(cfg(), workdir)
  assert e.value.exit_status == 143
  assert sorted(map(int, os.listdir(os.path.join(workdir, "checkpoints")))) \
      == [4, 6]
  assert signal.getsignal(signal.SIGTERM) is not None  # handler restored
  monkeypatch.undo()
  resumed = train.run(cfg(), workdir)
  _same(_params(resumed), _params(straight))


def test_ctrl_c_stops_with_one_line_and_the_run_resumes(
    tmp_path, monkeypatch, tiny_config):
  cfg = _faults_config(tiny_config)
  workdir = str(tmp_path / "w")

  def interrupt():
    raise KeyboardInterrupt
  _at_batch(monkeypatch, 7, interrupt)
  with pytest.raises(errors.RunStopped) as e:
    train.run(cfg(), workdir)
  assert str(e.value) == ("Interrupted at step 6; run the same command to "
                          "resume from the checkpoint at step 4.")
  assert e.value.exit_status == 130
  monkeypatch.undo()
  assert train.run(cfg(), workdir)["step"] == 12


def test_a_refused_resume_leaves_config_json_as_it_was(tmp_path, tiny_config):
  cfg = _faults_config(tiny_config)
  workdir = str(tmp_path / "w")
  train.run(cfg(total_steps=4), workdir)
  with open(os.path.join(workdir, "config.json")) as f:
    before = f.read()
  other = cfg()
  other.model.hidden = (32,)
  with pytest.raises(train.CheckpointMismatchError):
    train.run(other, workdir)
  with open(os.path.join(workdir, "config.json")) as f:
    assert f.read() == before
  assert json.loads(before)["model"]["hidden"] == [16]


def test_tensorboard_shows_each_step_once_after_a_resume(
    tmp_path, monkeypatch, tiny_config):
  """Killed at step 10 with the last checkpoint at 8: the resumed run logs
  steps 10 and 12 again, and the first run's 10 is purged."""
  cfg = _faults_config(tiny_config)
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / "w")

  def interrupt():
    raise KeyboardInterrupt
  _at_batch(monkeypatch, 11, interrupt)  # after step 10 is logged
  with pytest.raises(errors.RunStopped, match="at step 10;"):
    train.run(cfg(), workdir)
  monkeypatch.undo()
  train.run(cfg(), workdir)
  acc = event_accumulator.EventAccumulator(os.path.join(workdir,
                                                        "tensorboard"))
  acc.Reload()
  steps = [e.step for e in acc.Scalars("train/loss")]
  assert steps == [2, 4, 6, 8, 10, 12]


def _binary(*args, cwd, timeout=300):
  return subprocess.run(
      [sys.executable, os.path.join(REPO, "launch", "train.py"), *args],
      cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_binary_user_errors_are_one_line_with_status_2(tmp_path):
  config = os.path.join(REPO, "configs", "mnist1d_cnn.py")
  for args, expected in [
      ([f"--config={config}:nonsense"],
       "FATAL: Unknown config variant 'nonsense' (after the colon in "
       "--config). This config knows: attention, debug."),
      ([f"--config={config}:debg"],
       "FATAL: Unknown config variant 'debg' (after the colon in --config)."
       " Did you mean 'debug'? This config knows: attention, debug."),
      ([f"--config={config}:debug", "--config.optim.learning_rate=-1"],
       "FATAL: config.optim.learning_rate must be > 0 (or an optax "
       "schedule), got -1.0."),
      ([f"--config={tmp_path}/none.py"],
       f"FATAL: --config: {tmp_path}/none.py [Errno 2] No such file or "
       f"directory: '{tmp_path}/none.py'"),
  ]:
    r = _binary(*args, f"--workdir={tmp_path}/w", cwd=tmp_path)
    assert r.returncode == 2, (args, r.stderr[-2000:])
    assert r.stderr.strip().splitlines() == [expected], args
    assert not os.path.exists(tmp_path / "w" / "checkpoints")


def test_binary_prints_the_resolved_config(tmp_path):
  config = os.path.join(REPO, "configs", "mnist1d_cnn.py")
  r = _binary(f"--config={config}:debug", "--print_config",
              "--config.optim.learning_rate=3e-3", cwd=tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  lines = r.stdout.splitlines()
  assert "--config.optim.learning_rate=0.003  (float)" in lines
  assert "--config.total_steps=20  (int)" in lines
  assert "--config.model.name='cnn'  (str)" in lines
  assert not os.listdir(tmp_path)  # nothing trained, nothing written


def test_binary_stops_on_sigterm_and_the_same_command_resumes(tmp_path):
  config = os.path.join(REPO, "configs", "mnist1d_cnn.py")
  args = [sys.executable, os.path.join(REPO, "launch", "train.py"),
          f"--config={config}:debug", f"--workdir={tmp_path}/w",
          "--config.total_steps=4000", "--config.eval_every=0",
          "--config.checkpoint_every=1000", "--config.progress_bar=False"]
  proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  # Wait for the run to be training (its TensorBoard file exists once the
  # loop has started), then preempt it.
  tb = tmp_path / "w" / "tensorboard"
  for _ in range(600):
    if tb.is_dir() and os.listdir(tb):
      break
    try:
      proc.wait(timeout=0.5)
      break
    except subprocess.TimeoutExpired:
      pass
  try:  # the handler is set just after; the first step compiles meanwhile
    proc.wait(timeout=1.0)
  except subprocess.TimeoutExpired:
    pass
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 143, err[-2000:]
  line = err.strip().splitlines()[-1]
  assert line.startswith("Preempted (SIGTERM) at step ")
  assert line.endswith("Run the same command to resume.")
  step = int(line.split("at step ")[1].split(":")[0])
  assert os.path.isdir(tmp_path / "w" / "checkpoints" / str(step))
  again = subprocess.run(args[:-4] + ["--config.total_steps=" +
                                      str(step + 2)],
                         cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
  assert again.returncode == 0, again.stderr[-2000:]
  assert f"Resuming from the checkpoint at step {step}" in again.stdout
