"""Irreducible-loss table files for the RHO-LOSS scorer.

A table holds one irreducible loss per training example, indexed by
`example_id` (accel.train.irreducible makes it by training the run's model
on a held-out slice). Files are `.npz` with `irreducible_loss` [num_train]
and the data config and size they were made for; `load_table` refuses a
table made for another data set or size.
"""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import numpy as np

from accel.errors import ConfigError

from accel.errors import MissingFileError


def _as_json(data_config) -> str:
  return json.dumps(dict(data_config), sort_keys=True, default=str)


def save_table(path: str, table: np.ndarray, data_config) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "wb") as f:
    np.savez(f, irreducible_loss=np.asarray(table, np.float32),
             data_config=_as_json(data_config))


def load_table(path: str, source, data_config) -> jnp.ndarray:
  """The table at `path`, checked against the run's data set: `source`
  (its training split's size) and `data_config` (what made it)."""
  if not os.path.exists(path):
    raise MissingFileError(
        f"Irreducible-loss table {path!r} does not exist. Make it with "
        "`python launch/irreducible_loss.py --config <the run's config> "
        f"--out {path}`.")
  with np.load(path) as f:
    table = f["irreducible_loss"]
    made_for = json.loads(str(f["data_config"]))
  n = source.num_examples("train")
  if table.shape != (n,):
    raise ConfigError(f"Irreducible-loss table {path!r} has {table.shape[0]} "
                      f"entries but the training split has {n} examples; it "
                      f"was made for data {made_for}.")
  now = json.loads(_as_json(data_config))
  if made_for != now:
    raise ConfigError(f"Irreducible-loss table {path!r} was made for data "
                      f"{made_for}, not this run's {now}.")
  return jnp.asarray(table)
