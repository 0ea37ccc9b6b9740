"""Held-out workloads against the meta-training family."""

import pytest

from accel.bench import split
from accel.bench import trial_configs
from accel.train import config as config_lib


def test_meta_training_data_sets_come_from_its_config():
  seen = split.meta_training_data_sets("configs/meta/default.py")
  assert seen == {"synthetic", "sequence"}


@pytest.mark.parametrize("workload,family", [
    ("text_lm", split.HELD_OUT),
    ("resnet20_textures", split.HELD_OUT),
    ("mnist1d_cnn", split.HELD_OUT),
    # Other settings of a generator still count as its data set.
    ("synthetic", split.META_TRAINING),
    ("digits_cnn", split.HELD_OUT),
])
def test_cpu_suite_workloads_are_classified(workload, family):
  bench = config_lib.load_file("configs/bench/cpu.py:full")
  seen = split.meta_training_data_sets(bench.meta_training_config)
  data = trial_configs.workload_config(bench.workloads[workload]).data
  assert split.family(data, seen)["family"] == family


def test_named_data_sets_are_told_apart():
  seen = {split.data_set({"name": "tfds", "dataset": "mnist"})}
  assert seen == {"tfds:mnist"}
  assert split.family({"name": "tfds", "dataset": "cifar10"}, seen) == {
      "family": split.HELD_OUT,
      "reason": "no meta-training task uses 'tfds:cifar10'"}
  assert split.family({"name": "textures"}, {"mnist1d"})["family"] == (
      split.HELD_OUT)


def test_held_out_workloads_run_first():
  families = {"a": split.META_TRAINING, "b": split.HELD_OUT,
              "c": split.META_TRAINING, "d": split.HELD_OUT}
  assert split.held_out_first(families) == ["b", "d", "a", "c"]
