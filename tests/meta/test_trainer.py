"""Meta-training: the task family, the ES estimator, the binary's debug run."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from accel.optim import gt_network
from accel.meta import tasks
from accel.meta import trainer
from accel.meta import truncated_es
from accel.train import config as config_lib

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _meta_config(variant):
  path = os.path.join(ROOT, "configs", "meta", "default.py")
  return config_lib.load_file(f"{path}:{variant}" if variant else path)


def test_every_default_task_builds():
  for spec in _meta_config("").tasks:
    task = tasks.make_task(spec)
    # Traced, not compiled: building every model, its batch and its loss is
    # what is checked (compiling all nine took 30 s on 2 cores).
    loss = jax.eval_shape(lambda k1, k2, t=task: t.loss(
        t.init(k1), t.batch(k2, t.arrays)), jax.random.PRNGKey(0),
                          jax.random.PRNGKey(1))
    assert loss.shape == () and loss.dtype == jnp.float32, spec["name"]


def test_task_errors_name_the_problem():
  with pytest.raises(ValueError, match=r"missing keys \['batch_size'\]"):
    tasks.make_task({"name": "t", "data": {"name": "digits"},
                     "model": {"name": "mlp"}})
  with pytest.raises(ValueError, match="loss must be 'xent' or 'mse'"):
    tasks.make_task({"name": "t", "data": {"name": "digits"},
                     "model": {"name": "mlp"}, "batch_size": 4,
                     "loss": "hinge"})


@pytest.mark.slow
def test_es_gradient_says_raise_a_too_small_learning_rate():
  """The ES estimate for the learning-rate output's bias, averaged over a
  few truncations, points the way that is known to help."""
  c = _meta_config("debug")
  runner = trainer.build_runners(c)["synthetic_mlp_32"]
  arch = gt_network.Architecture(**dict(c.architecture))
  theta = gt_network.init_weights(arch)
  key = jax.random.PRNGKey(0)
  streams = runner.init_streams(key, c.num_pairs)
  refs = jax.tree.map(lambda x: x[:c.num_reference], streams)
  grads = []
  for i in range(6):
    _, _, g, m = runner.unroll(theta, streams, refs,
                               jax.random.fold_in(key, i), jnp.float32(0.05))
    grads.append(g["head"]["bias"][0])
  # Raising the learning-rate multiplier lowers the loss when the base
  # learning rate is 1e-4 (too small): the estimate must say so.
  assert np.mean(grads) < 0
  assert np.isfinite(float(m["meta_loss"]))


@pytest.mark.slow
def test_debug_run_improves_meta_objective_and_resumes(tmp_path, capsys,
                                                      one_device_env):
  c = _meta_config("debug")
  workdir = str(tmp_path / "meta")
  trainer.run(c, workdir, stop_after=6)
  out = capsys.readouterr().out
  # It says what it does before the first (slow) compile, and shows a bar.
  assert out.startswith(f"Meta-training on 1 tasks, iterations 0 to 12, in "
                        f"{workdir}")
  assert "meta-train:" in out and "6/12" in out
  trainer.run(c, workdir)  # resumes at iteration 6
  assert "iterations 6 to 12" in capsys.readouterr().out
  # The binary's last line says where the weights are (a finished run is
  # not trained again).
  r = subprocess.run([sys.executable, os.path.join(ROOT, "launch",
                                                   "meta_train.py"),
                      f"--config={ROOT}/configs/meta/default.py:debug",
                      f"--workdir={workdir}"], cwd=tmp_path,
                     capture_output=True, text=True, timeout=300,
                     env=one_device_env)
  assert r.returncode == 0, r.stderr[-2000:]
  assert r.stdout.strip().splitlines()[-1] == (
      f"Weights: {workdir}/{trainer.WEIGHTS_NAME} (metadata in "
      f"{trainer.METADATA_NAME} beside it); copy both into "
      "accel/optim/weights/ to ship them.")
  with open(os.path.join(workdir, trainer.METADATA_NAME)) as f:
    meta = json.load(f)
  assert meta["meta_iterations"] == c.num_iterations
  theta, arch, _ = gt_network.load_weights(
      os.path.join(workdir, trainer.WEIGHTS_NAME))
  runners = trainer.build_runners(c)
  before = trainer.evaluate(c, runners, gt_network.init_weights(arch))
  after = trainer.evaluate(c, runners, theta)
  assert before["eval/vs_adamw"] == 0.0  # zero head: exactly AdamW
  assert after["eval/vs_adamw"] < -0.005


def test_restart_replaces_finished_and_diverged_streams():
  c = _meta_config("debug")
  runner = trainer.build_runners(c)["synthetic_mlp_32"]
  streams = runner.init_streams(jax.random.PRNGKey(0), 4)
  streams = streams._replace(step=jnp.array([0, 100, 5, 0], jnp.int32))
  params = jax.tree.map(lambda x: x.at[3].set(jnp.nan), streams.params)
  streams = streams._replace(params=params)
  refs = jax.tree.map(lambda x: x[:1], streams)
  new, _, n = runner.restart(streams, refs, jax.random.PRNGKey(1))
  assert int(n) == 2
  np.testing.assert_array_equal(np.asarray(new.step), [0, 0, 5, 0])
  for leaf in jax.tree.leaves(new.params):
    assert np.isfinite(np.asarray(leaf)).all()
  assert truncated_es.warmup_cosine(jnp.int32(1000), 1.0,
                                    jnp.int32(1000)) == pytest.approx(0.0)
