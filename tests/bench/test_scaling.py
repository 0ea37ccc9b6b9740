"""Throughput points: the same training on one device and on a mesh."""

import pytest

from accel.bench import scaling
from accel.train import config as config_lib


def test_scaling_points_train_alike_and_compare_with_one_device():
  from accel.bench import scaling  # pylint: disable=g-import-not-at-top
  from accel.train import config as config_lib  # pylint: disable=g-import-not-at-top
  c = config_lib.load_file("configs/mnist1d_mlp.py:debug")
  one = scaling.measure(c, devices=1, steps=3, warmup=1)
  fsdp = scaling.measure(c, devices=4, layout="fsdp", steps=3, warmup=1)
  assert (one["replicated_share"], fsdp["devices"]) == (1.0, 4)
  assert fsdp["replicated_share"] < 0.5  # the weights are split 4 ways
  # The same batches on both meshes: the timed steps trained alike.
  assert fsdp["final_loss"] == pytest.approx(one["final_loss"], rel=1e-4)
  table = scaling.markdown([one, fsdp], "t")
  ratio = fsdp["examples_per_s"] / one["examples_per_s"]
  assert f"| 4 | fsdp | float32 | {fsdp['step_ms']:.2f} |" in table
  assert f"| {ratio:.2f}x |" in table and "| 1.00x |" in table
  with pytest.raises(ValueError, match="'tensor'; expected 'data' or"):
    scaling.layout_mesh("tensor", 2)
