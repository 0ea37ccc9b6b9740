"""Meta-training the gradient transformer (configs/meta/default.py:debug):
the meta-gradient has signal, the run exports loadable weights with their
measurements, and a stopped run resumes from its checkpoint."""

import json
import os

import jax
import numpy as np
import pytest

from accel.meta import trainer
from accel.meta import tasks as tasks_lib
from accel.meta import unrolled
from accel.optim import gt_network
from accel.optim import gt_transform
from accel.train import config as config_lib

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs",
                      "meta", "default.py")


def _config():
  return config_lib.load_file(f"{CONFIG}:debug")


def test_debug_meta_training_has_signal_exports_and_resumes(tmp_path):
  c = _config()
  workdir = str(tmp_path / "w")
  first = trainer.run(c, workdir, stop_after=3)
  meta = json.load(open(os.path.join(workdir,
                                     trainer.METADATA_NAME)))
  snr = meta["snr_start"]
  # Independent estimates agree far beyond chance (random directions in
  # N dimensions have cosines of about 1/sqrt(N)).
  assert snr["snr/mean_cosine"] > snr["snr/bar"] > 0
  assert meta["meta_iterations"] == 3
  assert set(meta["ablation"]["clusters_mlp_16"]) >= {
      "learned_vs_base", "constant_vs_base"}
  assert meta["tuned_learning_rates"]["clusters_mlp_16"]["learning_rate"] in (
      c.lr_grid)
  path = os.path.join(workdir, trainer.WEIGHTS_NAME)
  weights, arch, saved = gt_network.load_weights(path)
  assert arch.as_dict() == dict(c.architecture)
  assert saved["snr_start"] == snr
  jax.tree.map(np.testing.assert_array_equal, weights, first["theta"])
  gt_transform.gradient_transformer(1e-3, rows_per_step=8, weights=path)

  # The same command again continues from the checkpoint at iteration 3.
  runners, _ = trainer.build(c, workdir)  # the cached rates
  second = trainer.run(c, workdir)
  meta2 = json.load(open(os.path.join(workdir,
                                      trainer.METADATA_NAME)))
  assert meta2["meta_iterations"] == c.num_iterations
  assert meta2["snr_start"] == snr  # measured once, kept across resumes
  assert [p["iteration"] for p in meta2["progress"]] == [2, 3, 4, 6]
  assert meta2["meta_minutes"] >= meta["meta_minutes"]
  assert sorted(runners) == ["clusters_mlp_16"]
  assert not all(np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(first["theta"]), jax.tree.leaves(second["theta"])))


def test_tune_learning_rate_picks_the_grid_minimum():
  c = _config()
  task = tasks_lib.make_task(c.tasks[0])
  best, losses = unrolled.tune_learning_rate(task, (1e-4, 1e-2), steps=30)
  assert set(losses) == {1e-4, 1e-2}
  assert best == min(losses, key=losses.get)
  assert losses[1e-2] < losses[1e-4]  # 30 steps at 1e-4 barely move


def test_unknown_or_duplicate_tasks_are_refused(tmp_path):
  c = _config()
  c.tasks = [c.tasks[0], c.tasks[0]]
  with pytest.raises(ValueError, match="unique"):
    trainer.build(c, str(tmp_path))


def _stack(*trees):
  return jax.tree.map(lambda *x: np.stack(x), *trees)


def test_combine_streams_mean_drops_non_finite_estimates():
  a = {"w": np.array([1.0, 2.0]), "b": np.array([3.0])}
  b = {"w": np.array([3.0, 0.0]), "b": np.array([-1.0])}
  bad = {"w": np.array([np.nan, 1.0]), "b": np.array([np.inf])}
  grad, kept = unrolled.combine_streams(_stack(a, b, bad), "mean")
  assert int(kept) == 2
  np.testing.assert_allclose(grad["w"], [2.0, 1.0])
  np.testing.assert_allclose(grad["b"], [1.0])


def test_combine_streams_unit_averages_directions_and_drops_outliers():
  a = {"w": np.array([3.0, 0.0]), "b": np.array([4.0])}      # norm 5
  b = {"w": np.array([0.0, 2.0]), "b": np.array([0.0])}      # norm 2
  c = {"w": np.array([0.0, 0.0]), "b": np.array([-1.0])}     # norm 1
  huge = {"w": np.array([1e6, 1e6]), "b": np.array([0.0])}   # an explosion
  grad, kept = unrolled.combine_streams(_stack(a, b, c, huge), "unit",
                                        outlier_factor=10.0)
  assert int(kept) == 3
  np.testing.assert_allclose(grad["w"], [(0.6 + 0 + 0) / 3, (0 + 1 + 0) / 3],
                             rtol=1e-6)
  np.testing.assert_allclose(grad["b"], [(0.8 + 0 - 1) / 3], rtol=1e-6)
  with pytest.raises(ValueError, match="'median'.*one of"):
    unrolled.combine_streams(_stack(a, b), "median")


def test_tuned_rates_are_cached_for_the_same_settings_only(tmp_path,
                                                          monkeypatch):
  c = _config()
  calls = []

  def fake(task, grid, steps, seed=0):
    calls.append((tuple(grid), steps))
    return grid[1], {lr: float(i) for i, lr in enumerate(grid)}
  monkeypatch.setattr(unrolled, "tune_learning_rate", fake)
  tasks = {t["name"]: None for t in c.tasks}
  first = trainer.tuned_rates(c, tasks, str(tmp_path))
  assert trainer.tuned_rates(c, tasks, str(tmp_path)) == first
  assert len(calls) == 1
  c.tune_steps = 2 * c.tune_steps
  trainer.tuned_rates(c, tasks, str(tmp_path))
  c.lr_grid = (1e-3, 3e-3)
  again = trainer.tuned_rates(c, tasks, str(tmp_path))
  assert len(calls) == 3
  assert again["clusters_mlp_16"]["learning_rate"] == 3e-3


def test_a_run_can_start_from_an_earlier_runs_weights(tmp_path):
  c = _config()
  arch = gt_network.Architecture(**dict(c.architecture))
  earlier = gt_network.init_weights(arch, seed=5)
  path = str(tmp_path / "earlier.msgpack")
  gt_network.save_weights(path, earlier, arch, {"command": "test"})
  assert not all(np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(earlier),
      jax.tree.leaves(trainer.initial_weights(c))))
  c.init_weights = path
  jax.tree.map(np.testing.assert_array_equal, earlier,
               trainer.initial_weights(c))
  other = gt_network.Architecture(**dict(c.architecture, width=4))
  gt_network.save_weights(path, gt_network.init_weights(other),
                                 other, {"command": "test"})
  with pytest.raises(ValueError, match=r"init_weights .* has architecture"):
    trainer.initial_weights(c)
