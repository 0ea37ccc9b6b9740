"""The interface every data set implements, and the grain pipeline over it.

A `Source` knows how many examples each split has and how to fetch a batch of
them by index. Everything else is shared: a deterministic, seeded, per-epoch
reshuffled training stream built with grain (its iterator state is a small
dict that checkpoints with the model), and fixed-order evaluation batches
padded to a static shape with a validity mask.

Batches are dicts of numpy arrays:
  inputs       [B, ...]  float32 features or int32 tokens
  label        [B] int32 (classification) or [B, L] int32 (language model)
  example_id   [B] int32 index of the example in its split (selection needs it)
  label_mask   [B, L]    (language models only) which targets count
  mask         [B] bool  (evaluation only) False on padding rows
  noisy        [B] bool  (synthetic only) the label was corrupted on purpose
"""

from __future__ import annotations

import functools
from typing import Any, Iterator

import grain
import numpy as np

from accel import registry
from accel.errors import ConfigError
from accel.spec import Batch
from accel.spec import DataSpec

SOURCES = registry.Registry("data set")

# Batches are cheap to fetch (vectorised gathers or array_record reads), so a
# couple of threads and a short prefetch queue are enough and keep the
# checkpointed iterator state close to what the trainer has consumed.
_READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)


class Source:
  """Random access to the examples of a data set's splits."""

  spec: DataSpec

  def num_examples(self, split: str) -> int:
    raise NotImplementedError

  def fetch(self, split: str, idx_B: np.ndarray) -> Batch:
    """The examples at indices `idx_B` of `split`, stacked (no example_id)."""
    raise NotImplementedError

  def _check_split(self, split: str) -> None:
    if split not in ("train", "test"):
      raise ConfigError(f"Unknown split {split!r}; expected 'train' or 'test'.")

  def train_iterator(self, batch_size: int, seed: int, *,
                     process_index: int = 0, process_count: int = 1,
                     exclude: np.ndarray | None = None
                     ) -> grain.DatasetIterator:
    """An endless, seeded stream of training batches.

    Each epoch is a fresh permutation drawn from `seed` (its last partial
    batch is dropped). With several
    processes each one reads a disjoint 1/process_count of the examples. The
    returned iterator has `get_state()`/`set_state()`: restoring a state
    replays exactly the batches that followed it. `exclude`: indices never
    trained on (a held-out probe's).
    """
    ids = np.arange(self.num_examples("train"), dtype=np.int32)
    if exclude is not None:
      ids = np.setdiff1d(ids, exclude).astype(np.int32)
    ids = ids[process_index::process_count]
    if batch_size > len(ids):
      raise ConfigError(
          f"batch_size {batch_size} is larger than the {len(ids)} "
          f"training examples this process reads from {self.spec.name!r}.")
    per_epoch = len(ids) // batch_size

    @functools.lru_cache(maxsize=4)
    def permutation(epoch: int) -> np.ndarray:
      return ids[np.random.default_rng([seed, epoch]).permutation(len(ids))]

    def batch_at(b: int, _) -> Batch:
      # Whole batches of indices, one Python call each: building them from
      # single examples cost more than the training step on small models.
      epoch, j = divmod(b, per_epoch)
      idx_B = permutation(epoch)[j * batch_size:(j + 1) * batch_size]
      return self._with_ids("train", idx_B)

    ds = grain.MapDataset.range(per_epoch).repeat(None).map_with_index(
        batch_at)
    return iter(ds.to_iter_dataset(read_options=_READ_OPTIONS))

  def eval_batches(self, batch_size: int, split: str = "test",
                   max_examples: int | None = None) -> Iterator[Batch]:
    """Every example of `split` once, in order, in batches of one shape.

    The last batch is padded by repeating index 0; `mask` marks real rows.
    """
    n = self.num_examples(split)
    if max_examples is not None:
      n = min(n, max_examples)
    for start in range(0, n, batch_size):
      idx_B = np.arange(start, start + batch_size, dtype=np.int32)
      mask_B = idx_B < n
      batch = self._with_ids(split, np.where(mask_B, idx_B, 0))
      batch["mask"] = mask_B
      yield batch

  def _with_ids(self, split: str, idx_B: np.ndarray) -> Batch:
    self._check_split(split)
    batch = self.fetch(split, idx_B)
    batch["example_id"] = idx_B.astype(np.int32)
    return batch


class ArraySource(Source):
  """A data set held in memory as dicts of equal-length numpy arrays."""

  def __init__(self, spec: DataSpec, train: Batch, test: Batch):
    for split, arrays in (("train", train), ("test", test)):
      lengths = {k: len(v) for k, v in arrays.items()}
      if len(set(lengths.values())) != 1:
        raise ConfigError(
            f"{spec.name}: arrays of the {split} split differ in length: "
            f"{lengths}.")
    self.spec = spec
    self._splits = {"train": train, "test": test}

  def num_examples(self, split: str) -> int:
    self._check_split(split)
    return len(self._splits[split]["label"])

  def fetch(self, split: str, idx_B: np.ndarray) -> Batch:
    return {k: v[idx_B] for k, v in self._splits[split].items()}

  def arrays(self, split: str) -> Batch:
    """The whole split (read-only view), e.g. for class counts."""
    self._check_split(split)
    return self._splits[split]


def read_only(arrays: Batch) -> Batch:
  """`arrays` with each array made read-only (for splits a generator keeps
  in a cache and hands to every caller), returned for chaining."""
  for a in arrays.values():
    a.setflags(write=False)
  return arrays


def iterator_state(it: grain.DatasetIterator) -> dict[str, Any]:
  """The iterator's position as a JSON-serialisable dict."""
  return dict(it.get_state())


def make_source(config) -> Source:
  """Builds the source named by `config.name` with the other keys."""
  return SOURCES.build(config)
