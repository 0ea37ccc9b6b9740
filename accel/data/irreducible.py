"""Irreducible-loss tables for the RHO-LOSS scorer (Mindermann et al. 2022).

`make_table(config, ...)` trains the run's model on a held-out slice of the
training split (a seeded `holdout_fraction` of it; the main run still
trains on every example, as in the paper's cheaper variant) and records its
loss on every training example, indexed by `example_id`. An example a
model trained on other data still gets wrong has a high irreducible loss
(noisy or ambiguous): the scorer `loss - irreducible` then ranks it low.

Files are `.npz` with `irreducible_loss` [num_train] and the data config
and size they were made for; `load_table` refuses a table made for another
data set or size.
"""

from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from accel import data
from accel import models
from accel import optim
from accel.data import selection
from accel.train import state as state_lib
from accel.train import step as step_lib


def make_table(config, *, holdout_fraction: float = 0.2, steps: int = 500,
               batch_size: int = 64, seed: int = 0) -> np.ndarray:
  """Per-example loss on the training split of a model trained only on a
  held-out slice of it. Uses `config.data`, `config.model`, `config.optim`."""
  if not 0.0 < holdout_fraction <= 1.0:
    raise ValueError(f"holdout_fraction must be in (0, 1], got "
                     f"{holdout_fraction}.")
  source = data.make_source(config.data)
  n = source.num_examples("train")
  holdout = np.random.default_rng(seed).permutation(n)[
      :max(batch_size, int(holdout_fraction * n))]
  model = models.make(config.model, source.spec)
  optimizer = optim.make(config.optim, steps)
  state = jax.jit(functools.partial(state_lib.init_state, model, optimizer,
                                    source.spec, seed))()
  step = jax.jit(functools.partial(step_lib.train_step, model=model,
                                   optimizer=optimizer), donate_argnums=0)
  rng = np.random.default_rng(seed + 1)
  for _ in range(steps):
    idx = rng.choice(holdout, batch_size, replace=False)
    state, metrics = step(state, source.fetch("train", idx))
    jax.block_until_ready(metrics)
  score = jax.jit(selection.loss_scorer(model))
  out = np.zeros(n, np.float32)
  for start in range(0, n, 512):
    idx = np.arange(start, min(start + 512, n))
    out[idx] = np.asarray(score(state.params, source.fetch("train", idx)))
  return out


def _as_json(data_config) -> str:
  return json.dumps(dict(data_config), sort_keys=True, default=str)


def save_table(path: str, table: np.ndarray, data_config) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "wb") as f:
    np.savez(f, irreducible_loss=np.asarray(table, np.float32),
             data_config=_as_json(data_config))


def load_table(path: str, source: data.Source, data_config) -> jnp.ndarray:
  """The table at `path`, checked against the run's data set."""
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"Irreducible-loss table {path!r} does not exist. Make it with "
        "`python launch/irreducible_loss.py --config <the run's config> "
        f"--out {path}`.")
  with np.load(path) as f:
    table = f["irreducible_loss"]
    made_for = json.loads(str(f["data_config"]))
  n = source.num_examples("train")
  if table.shape != (n,):
    raise ValueError(f"Irreducible-loss table {path!r} has {table.shape[0]} "
                     f"entries but the training split has {n} examples; it "
                     f"was made for data {made_for}.")
  now = json.loads(_as_json(data_config))
  if made_for != now:
    raise ValueError(f"Irreducible-loss table {path!r} was made for data "
                     f"{made_for}, not this run's {now}.")
  return jnp.asarray(table)
