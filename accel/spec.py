"""Plain types that several layers share. Imports nothing of accel.

`DataSpec` is what a model and the train loop need to know of a data set;
`Batch` is the host-side batch, a dict of numpy arrays (see
`accel.data.source` for its keys).
"""

from __future__ import annotations

import dataclasses

import numpy as np

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What a model and the train loop need to know about a data set."""
  name: str
  task: str  # "classification" or "lm"
  input_shape: tuple[int, ...]  # one example, without the batch axis
  input_dtype: str  # "float32" or "int32"
  num_classes: int  # classes, or the vocabulary size for "lm"
  num_train: int
  num_test: int
  input_vocab_size: int = 0  # token inputs: ids are in [0, input_vocab_size)
