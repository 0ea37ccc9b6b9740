"""Which benchmark workloads the learned optimizer's meta-training saw.

A workload is *held out* when it shares no data set with any meta-training
task (so no architecture-plus-data combination either); otherwise it is of
the *meta-training family*. A data set is a data source (its `name`), and
for sources that open a named data set (tfds, text files) that name too:
two synthetic generators with other settings count as one data set, which
errs towards calling a workload seen. The split is computed from the
meta-training config itself, so it cannot drift from what was trained.
"""

from __future__ import annotations

from typing import Any, Iterable

from accel.train import config as config_lib

HELD_OUT = "held_out"
META_TRAINING = "meta_training"

# Source options that name the data set a source opens.
_DATASET_KEYS = ("dataset", "corpus", "path")


def data_set(data: Any) -> str:
  """The identity of a `data` section: its source, and the data set it
  opens where it opens a named one."""
  data = dict(data)
  for k in _DATASET_KEYS:
    if data.get(k):
      return f"{data['name']}:{data[k]}"
  return str(data["name"])


def meta_training_data_sets(meta_config_path: str) -> set[str]:
  """The data sets of a meta-training config's tasks (configs/meta/)."""
  meta = config_lib.load_file(meta_config_path)
  return {data_set(t["data"]) for t in meta.tasks}


def family(data: Any, seen: Iterable[str]) -> dict[str, str]:
  """{"family": HELD_OUT or META_TRAINING, "reason": ...} of a workload
  whose training config has `data`, given the meta-training data sets."""
  name = data_set(data)
  if name in set(seen):
    return {"family": META_TRAINING,
            "reason": f"meta-training tasks use the data set {name!r}"}
  return {"family": HELD_OUT,
          "reason": f"no meta-training task uses {name!r}"}


def held_out_first(families: dict[str, str]) -> list[str]:
  """Workload names, held-out ones first, each group in its given order:
  a suite stopped halfway then has the workloads its conclusions come
  from. `families`: {workload: HELD_OUT or META_TRAINING}."""
  return sorted(families, key=lambda w: families[w] != HELD_OUT)
