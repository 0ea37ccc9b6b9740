"""TensorBoard event files: two writers in one workdir keep both files."""

from tensorboard.backend.event_processing import event_accumulator

from accel.train import metrics


def test_two_writers_in_the_same_second_keep_both_runs(tmp_path):
  """A run and its resumption can open their writers within one second;
  tensorboardX names files by the second, so without a finer suffix the
  second file replaced the first (the flaky resume test's cause)."""
  first = metrics.MetricWriter(str(tmp_path))
  first.scalars(1, {"loss": 1.0})
  first.close()
  second = metrics.MetricWriter(str(tmp_path), purge_step=2)
  second.scalars(2, {"loss": 0.5})
  second.close()
  acc = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
  acc.Reload()
  assert [e.step for e in acc.Scalars("loss")] == [1, 2]
