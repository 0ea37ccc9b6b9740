"""Irreducible-loss table files: round trip and the refusals."""

import numpy as np
import pytest

from accel.selection import tables


def test_irreducible_table_round_trips_and_refuses_other_data(tmp_path, tiny):
  source, _, _, _ = tiny
  path = str(tmp_path / "il.npz")
  n = source.num_examples("train")
  table = np.linspace(0, 2, n).astype(np.float32)
  cfg = {"name": "synthetic", "num_train": 256}
  tables.save_table(path, table, cfg)
  np.testing.assert_array_equal(tables.load_table(path, source, cfg),
                                table)
  with pytest.raises(ValueError, match="was made for data"):
    tables.load_table(path, source, {"name": "synthetic",
                                          "num_train": 256, "dim": 4})
  tables.save_table(path, table[:100], cfg)
  with pytest.raises(ValueError, match=f"has 100 entries but the training "
                     f"split has {n}"):
    tables.load_table(path, source, cfg)
  with pytest.raises(FileNotFoundError, match="launch/irreducible_loss.py"):
    tables.load_table(str(tmp_path / "none.npz"), source, cfg)
