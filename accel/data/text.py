"""Byte-level language modelling on real text that is on the machine.

Corpora (no download):
  python_stdlib  the source files (*.py) of the running CPython's standard
                 library (`sysconfig`'s stdlib folder; site-packages left
                 out): about 30 MB of code, comments and docstrings for
                 CPython 3.11. Its bytes depend on the Python version; the
                 spec's name records it.
  python_docs    the text of the Python reference and library manual topics
                 that ship with CPython (`pydoc_data.topics`, the text
                 `help()` prints): about 0.75 MB of English prose and
                 examples.
  a path         a folder whose files (recursively, in sorted order) make
                 the corpus, or one text file (enwik8, say), read as
                 documents of FILE_DOCUMENT_BYTES.

Documents (files, or topics) go to the test split when a CRC32 of their name
falls in the `test_fraction` share, so no document is split across train
and test. Each split is cut into windows of `length` + 1 bytes; an example
is a window: inputs its first `length` bytes, label the next byte at every
position (every target counts). `max_train_bytes` and `max_test_bytes` cap
what is read (the first documents of each split, in order).
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
import zlib

import numpy as np

from accel.data import source
from accel.errors import ConfigError
from accel.errors import MissingFileError

CORPORA = ("python_stdlib", "python_docs")


def _stdlib_documents():
  root = sysconfig.get_paths()["stdlib"]
  for folder, dirs, files in os.walk(root):
    dirs[:] = sorted(d for d in dirs
                     if d not in ("site-packages", "dist-packages",
                                  "__pycache__"))
    for f in sorted(files):
      if f.endswith(".py"):
        path = os.path.join(folder, f)
        yield os.path.relpath(path, root), path


# One text file is cut into documents of this many bytes, so that the
# test split draws from all of it.
FILE_DOCUMENT_BYTES = 1 << 16


def _file_documents(path: str):
  with open(path, "rb") as f:
    data = f.read()
  name = os.path.basename(path)
  for start in range(0, len(data), FILE_DOCUMENT_BYTES):
    yield f"{name}@{start}", data[start:start + FILE_DOCUMENT_BYTES]


def _path_documents(path: str):
  if not os.path.isdir(path):
    raise MissingFileError(
        f"text corpus {path!r} is neither one of {CORPORA} nor a file or "
        "folder on this machine.")
  for folder, dirs, files in os.walk(path):
    dirs.sort()
    for f in sorted(files):
      full = os.path.join(folder, f)
      yield os.path.relpath(full, path), full


def _documents(corpus: str):
  """(name, bytes) of every document of `corpus`, in a fixed order."""
  if corpus == "python_docs":
    from pydoc_data import topics  # pylint: disable=g-import-not-at-top
    for name in sorted(topics.topics):
      yield name, topics.topics[name].encode("utf-8")
    return
  if corpus not in CORPORA and os.path.isfile(corpus):
    yield from _file_documents(corpus)
    return
  listing = (_stdlib_documents() if corpus == "python_stdlib"
             else _path_documents(corpus))
  for name, path in listing:
    with open(path, "rb") as f:
      yield name, f.read()


def is_test(name: str, test_fraction: float) -> bool:
  """Whether document `name` belongs to the test split."""
  return zlib.crc32(name.encode("utf-8")) % 10_000 < test_fraction * 10_000


def _windows(chunks: list[bytes], length: int) -> np.ndarray:
  data = np.frombuffer(b"".join(chunks), np.uint8)
  n = len(data) // (length + 1)
  return data[:n * (length + 1)].reshape(n, length + 1).astype(np.int32)


@functools.lru_cache(maxsize=2)
def _splits(corpus, length, test_fraction, max_train_bytes, max_test_bytes):
  """Both splits as windows [N, length + 1], read-only (a benchmark builds
  the source every trial; reading 30 MB each time would dominate)."""
  chunks = {"train": [], "test": []}
  sizes = {"train": 0, "test": 0}
  caps = {"train": max_train_bytes, "test": max_test_bytes}
  for name, data in _documents(corpus):
    split = "test" if is_test(name, test_fraction) else "train"
    if caps[split] and sizes[split] >= caps[split]:
      if all(caps[s] and sizes[s] >= caps[s] for s in caps):
        break
      continue
    if caps[split]:
      data = data[:caps[split] - sizes[split]]
    chunks[split].append(data)
    sizes[split] += len(data)
  out = {}
  for split in ("train", "test"):
    w = _windows(chunks[split], length)
    if not len(w):
      raise ConfigError(
          f"text corpus {corpus!r} gives no {split} window of {length + 1} "
          f"bytes ({sizes[split]} bytes in its {split} split); lower "
          "length or raise test_fraction.")
    w.setflags(write=False)
    out[split] = w
  return out["train"], out["test"]


@source.SOURCES.register("text")
def make_text(corpus: str = "python_stdlib", length: int = 128,
              test_fraction: float = 0.05, max_train_bytes: int = 16 << 20,
              max_test_bytes: int = 256 << 10) -> source.ArraySource:
  """Byte-level next-token prediction on `corpus` (see the module
  docstring); 0 for a byte cap reads the whole split."""
  if length < 1:
    raise ConfigError(f"length must be >= 1, got {length}.")
  if not 0.0 < test_fraction < 1.0:
    raise ConfigError(f"test_fraction must be in (0, 1), got "
                      f"{test_fraction}.")
  train, test = _splits(corpus, length, test_fraction,
                              max_train_bytes, max_test_bytes)
  name = corpus if corpus in CORPORA else os.path.basename(
      os.path.normpath(corpus))
  if corpus == "python_stdlib":
    name += f"-{sys.version_info.major}.{sys.version_info.minor}"
  spec = source.DataSpec(
      name=f"text:{name}", task="lm", input_shape=(length,),
      input_dtype="int32", num_classes=256, num_train=len(train),
      num_test=len(test), input_vocab_size=256)
  split = lambda w: {"inputs": w[:, :-1], "label": w[:, 1:]}
  return source.ArraySource(spec, split(train), split(test))
