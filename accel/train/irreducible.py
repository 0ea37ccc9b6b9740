"""Irreducible-loss tables for the RHO-LOSS scorer (Mindermann et al. 2022).

`make_table(config, ...)` trains the run's model on a held-out slice of the
training split (a seeded `holdout_fraction` of it; the main run still
trains on every example, as in the paper's cheaper variant) and records its
loss on every training example, indexed by `example_id`. An example a
model trained on other data still gets wrong has a high irreducible loss
(noisy or ambiguous): the scorer `loss - irreducible` then ranks it low.
The model, optimizer, mesh and precision policy come from the run's config
through the one builder (accel.train.build); the table files are written
and checked by accel.selection.tables.
"""

from __future__ import annotations

import jax
import numpy as np

from accel import parallel
from accel.errors import ConfigError
from accel.selection import scorers
from accel.train import build as build_lib

_SCORE_BATCH = 512


def make_table(config, *, holdout_fraction: float = 0.2, steps: int = 500,
               batch_size: int = 64, seed: int = 0) -> np.ndarray:
  """Per-example loss on the training split of a model trained only on a
  held-out slice of it, for `steps` steps of `batch_size` examples. Uses the
  config's data, model, optimizer, mesh and precision; batch selection is
  off for this model."""
  if not 0.0 < holdout_fraction <= 1.0:
    raise ConfigError(f"holdout_fraction must be in (0, 1], got "
                      f"{holdout_fraction}.")
  c = config.copy_and_resolve_references()
  c.total_steps, c.batch_size, c.seed = steps, batch_size, seed
  c.selection.scorer = "none"
  parts = build_lib.build(c)
  source, compiled = parts.source, parts.steps
  n = source.num_examples("train")
  holdout = np.random.default_rng(seed).permutation(n)[
      :max(batch_size, int(holdout_fraction * n))]
  state = compiled.init()
  rng = np.random.default_rng(seed + 1)
  for _ in range(steps):
    idx = rng.choice(holdout, batch_size, replace=False)
    state, metrics = compiled.train(
        state, compiled.train_batch(source.fetch("train", idx)))
    jax.block_until_ready(metrics)
  score = jax.jit(scorers.loss_scorer(parts.model))
  out = np.zeros(n, np.float32)
  for start in range(0, n, _SCORE_BATCH):
    idx = np.arange(start, min(start + _SCORE_BATCH, n))
    batch = jax.device_put(source.fetch("train", idx),
                           parallel.replicated(compiled.mesh))
    out[idx] = np.asarray(jax.device_get(score(state.params, batch)))
  return out
