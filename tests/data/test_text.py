"""Byte-level text corpora: document-level splits, windows, caps, errors."""

import numpy as np
import pytest

from accel import data
from accel.data import text
from accel.errors import ConfigError
from accel.errors import MissingFileError


def _corpus(tmp_path, n=40):
  folder = tmp_path / "corpus"
  (folder / "sub").mkdir(parents=True)
  for i in range(n):
    where = folder / "sub" if i % 2 else folder
    (where / f"doc{i:02d}.txt").write_bytes(bytes([65 + i % 26]) * 100)
  return str(folder)


def test_windows_are_next_byte_pairs_and_documents_stay_whole(tmp_path):
  path = _corpus(tmp_path)
  s = data.make_source({"name": "text", "corpus": path, "length": 9,
                        "test_fraction": 0.25, "max_train_bytes": 0,
                        "max_test_bytes": 0})
  assert s.spec.task == "lm" and s.spec.num_classes == 256
  assert s.spec.name == "text:corpus" and s.spec.input_shape == (9,)
  names = [f"{'sub/' if i % 2 else ''}doc{i:02d}.txt" for i in range(40)]
  test_docs = [n for n in names if text.is_test(n, 0.25)]
  assert 0 < len(test_docs) < 40
  # 100 bytes a document, windows of 10 bytes over the concatenation.
  assert s.num_examples("test") == len(test_docs) * 100 // 10
  assert s.num_examples("train") == (40 - len(test_docs)) * 100 // 10
  train = s.arrays("train")
  np.testing.assert_array_equal(train["inputs"][:, 1:],
                                train["label"][:, :-1])
  # Every test window's bytes are letters of test documents only.
  letters = {65 + int(n[-6:-4]) % 26 for n in test_docs}
  assert set(np.unique(s.arrays("test")["inputs"])) <= letters
  assert train["inputs"].dtype == np.int32


def test_byte_caps_read_the_first_documents(tmp_path):
  path = _corpus(tmp_path)
  s = data.make_source({"name": "text", "corpus": path, "length": 9,
                        "test_fraction": 0.25, "max_train_bytes": 250,
                        "max_test_bytes": 0})
  assert s.num_examples("train") == 25


def test_python_docs_ship_with_python():
  s = data.make_source({"name": "text", "corpus": "python_docs",
                        "max_train_bytes": 1 << 16})
  assert s.num_examples("train") == (1 << 16) // 129
  assert s.num_examples("test") > 10
  b = next(s.train_iterator(4, seed=0))
  assert b["inputs"].shape == b["label"].shape == (4, 128)


def test_bad_corpus_and_options_are_named(tmp_path):
  with pytest.raises(MissingFileError, match="'/no/such/corpus' is neither"):
    data.make_source({"name": "text", "corpus": "/no/such/corpus"})
  with pytest.raises(ConfigError, match="test_fraction must be in"):
    data.make_source({"name": "text", "test_fraction": 1.5})
  # One file is cut into 64 KiB documents, so both splits draw from it.
  big = tmp_path / "big.txt"
  big.write_bytes(bytes(range(256)) * (1 << 12))  # 1 MiB: 16 documents
  s = data.make_source({"name": "text", "corpus": str(big),
                        "test_fraction": 0.25, "max_train_bytes": 0,
                        "max_test_bytes": 0})
  n_test = sum(text.is_test(f"big.txt@{i << 16}", 0.25) for i in range(16))
  assert 0 < n_test < 16
  assert s.num_examples("test") == n_test * (1 << 16) // 129
  one = tmp_path / "tiny.txt"
  one.write_bytes(b"abc")
  with pytest.raises(ConfigError, match="no train window of 129 bytes"):
    data.make_source({"name": "text", "corpus": str(one),
                      "test_fraction": 0.01})
