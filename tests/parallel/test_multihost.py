"""Two processes on this machine form one job (jax.distributed over gloo),
as the hosts of a pod slice or a SLURM job do: each reads its share of the
data, they train one sharded state, write one checkpoint, and resume it."""

import json
import os
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # end-to-end: runs, binaries, notebooks

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
ARGS = ["--config", "configs/synthetic_mlp.py:debug",
        "--config.batch_size=16", "--config.eval_batch_size=16",
        "--config.eval_max_examples=64", "--config.eval_every=0",
        "--config.log_every=4", "--config.checkpoint_every=4",
        "--config.progress_bar=False"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _run_job(workdir, total_steps, env, processes=2, devices_each=2):
  # conftest's compile-time flags stay; each process has its own devices.
  env = dict(env, JAX_PLATFORMS="cpu", XLA_FLAGS=(
      env["XLA_FLAGS"] +
      f" --xla_force_host_platform_device_count={devices_each}"))
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  address = f"localhost:{_free_port()}"
  procs = [subprocess.Popen(
      [sys.executable, "launch/train.py", *ARGS, f"--workdir={workdir}",
       f"--config.total_steps={total_steps}", "--multihost",
       f"--coordinator_address={address}", f"--num_processes={processes}",
       f"--process_id={i}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True) for i in range(processes)]
  outputs = []
  for p in procs:
    try:
      out, _ = p.communicate(timeout=240)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail("a process of the two-process job hung")
    outputs.append(out)
  for i, (p, out) in enumerate(zip(procs, outputs)):
    assert p.returncode == 0, f"process {i} failed:\n{out[-3000:]}"
  return outputs


def test_two_processes_train_checkpoint_and_resume(tmp_path, one_device_env):
  workdir = str(tmp_path / "job")
  first = _run_job(workdir, 8, one_device_env)
  # Only process 0 reports; both took part in every step and save.
  assert "Final test accuracy" in first[0] and "step 8" in first[0]
  assert "Final test accuracy" not in first[1]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "8"]

  second = _run_job(workdir, 12, one_device_env)
  assert "Resuming from the checkpoint at step 8" in second[0], second[0]
  with open(os.path.join(workdir, "final_metrics.json")) as f:
    metrics = json.load(f)
  assert metrics["step"] == 12
  assert 0.0 <= metrics["accuracy"] <= 1.0
