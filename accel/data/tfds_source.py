"""Any TensorFlow Datasets data set, read through `tfds.data_source`.

Random access over array_record files: no TensorFlow at run time, and grain
(in `source.Source.train_iterator`) does the shuffling, batching and
checkpointable iteration. Preprocessing follows the features:
  image + label  -> float32 image in [0, 1] (optionally standardised), int label
  text + label   -> int32 UTF-8 bytes + 1 (0 pads), cut or padded to max_length
The data set must be prepared in array_record format first (on a machine
with internet); `make_tfds` says how when it is not.
"""

from __future__ import annotations

import numpy as np

from accel.data import source
from accel.errors import AccelError
from accel.errors import ConfigError

_PREPARE_HINT = (
    "Prepare it once where the data set's host can be reached, in "
    "array_record format:\n"
    "  python -c \"import tensorflow_datasets as tfds; "
    "tfds.builder('{name}', data_dir='{data_dir}', "
    "file_format='array_record').download_and_prepare()\"\n"
    "and copy that data_dir here (--config.data.data_dir=DIR names it), or "
    "run with --config.data.download=True on such a machine. Preparing "
    "needs the `train` extra (pip install 'accel[train]', which `make "
    "train` installs); some image sets also need TensorFlow.")


class DatasetNotPreparedError(AccelError, RuntimeError):
  """The tfds data set has no array_record files to read."""


class TfdsSource(source.Source):
  """Preprocessed random access to one tfds data set's train and test split."""

  def __init__(self, name, sources, features, standardize, max_length):
    self._sources = sources
    self._standardize = standardize
    self._max_length = max_length
    label = features["label"]
    if "image" in features:
      self._kind = "image"
      shape = tuple(features["image"].shape)
      if None in shape:
        raise ConfigError(f"tfds data set {name!r} has images of varying size "
                          f"{shape}; accel reads fixed-size images only.")
      input_shape, dtype, vocab = shape, "float32", 0
    elif "text" in features:
      self._kind = "text"
      input_shape, dtype = (max_length,), "int32"
      vocab = 257  # bytes + 1, with 0 for padding
    else:
      raise ConfigError(
          f"tfds data set {name!r} has features {sorted(features)}; accel "
          "reads data sets with an 'image' or 'text' feature and a 'label'.")
    self.spec = source.DataSpec(
        name=name, task="classification", input_shape=input_shape,
        input_dtype=dtype, num_classes=int(label.num_classes),
        num_train=len(sources["train"]), num_test=len(sources["test"]),
        input_vocab_size=vocab)
    self._mean_std = None
    if self._kind == "image" and standardize:
      # Per-channel statistics of (up to) the first 2,048 training images:
      # deterministic, cheap, and close enough to the full-split values.
      sample = self._images(self._read("train", np.arange(
          min(2048, len(sources["train"])))))
      self._mean_std = (sample.mean(axis=(0, 1, 2)),
                        sample.std(axis=(0, 1, 2)) + 1e-6)

  def num_examples(self, split: str) -> int:
    self._check_split(split)
    return len(self._sources[split])

  def _read(self, split, idx_B):
    ds = self._sources[split]
    return [ds[int(i)] for i in idx_B]

  def _images(self, records):
    return np.stack([r["image"] for r in records]).astype(np.float32) / 255.0

  def _tokens(self, records):
    out = np.zeros((len(records), self._max_length), np.int32)
    for row, r in enumerate(records):
      text = r["text"]
      data = text if isinstance(text, bytes) else str(text).encode("utf-8")
      ids = np.frombuffer(data[:self._max_length], np.uint8).astype(np.int32)
      out[row, :len(ids)] = ids + 1
    return out

  def fetch(self, split: str, idx_B: np.ndarray) -> source.Batch:
    records = self._read(split, idx_B)
    if self._kind == "image":
      inputs = self._images(records)
      if self._mean_std is not None:
        inputs = (inputs - self._mean_std[0]) / self._mean_std[1]
    else:
      inputs = self._tokens(records)
    label = np.array([r["label"] for r in records], np.int32)
    return {"inputs": inputs, "label": label}


@source.SOURCES.register("tfds")
def make_tfds(dataset: str = "mnist", data_dir: str | None = None,
              train_split: str = "train", test_split: str = "test",
              download: bool = False, standardize: bool = True,
              max_length: int = 512) -> TfdsSource:
  """Opens `dataset` from `data_dir` (tfds's default directory when None).

  Args:
    dataset: a tfds name, optionally with config/version ("cifar10:3.0.2").
    data_dir: where the prepared data set lives.
    train_split, test_split: tfds split names (slicing like "train[:90%]"
      works).
    download: download and prepare when missing (needs internet access).
    standardize: images only: per-channel zero mean, unit variance.
    max_length: text only: bytes kept per example.
  """
  # Imported here: tfds is slow to import and only this source needs it.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    builder = tfds.builder(dataset, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ConfigError(f"Unknown tfds data set {dataset!r}: "
                      f"{str(e).splitlines()[0]}") from e
  where = data_dir or tfds.core.constants.DATA_DIR
  hint = _PREPARE_HINT.format(name=dataset, data_dir=where)
  if download:
    builder.download_and_prepare(file_format="array_record")
  try:
    sources = {
        "train": builder.as_data_source(split=train_split),
        "test": builder.as_data_source(split=test_split),
    }
  except Exception as e:  # pylint: disable=broad-except
    if not builder.is_prepared():
      raise DatasetNotPreparedError(
          f"tfds data set {dataset!r} is not prepared in {where}.\n{hint}"
      ) from e
    raise DatasetNotPreparedError(
        f"tfds data set {dataset!r} in {where} cannot be read with random "
        f"access ({type(e).__name__}: {str(e).splitlines()[0]}).\n{hint}"
    ) from e
  return TfdsSource(dataset, sources, builder.info.features, standardize,
                    max_length)
