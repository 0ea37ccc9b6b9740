"""Free scores: every training example's last training loss, kept on device.

The `stale_loss` scorer runs no forward pass of its own. The train step
already computes each trained example's loss; `record` writes those losses
into a table indexed by `example_id`, with the step they were measured at.
The next time an example comes up as a candidate, its score is that stale
loss (Loshchilov & Hutter 2015, arXiv 1511.06343; Selective-Backprop, Jiang
et al. 2019, arXiv 1910.00762, which reports that stale scores lose little).

An example never trained on, or last trained on more than `staleness` steps
ago, has no score worth trusting: it gets the highest score among its
group's trusted candidates (0 when none is trusted), so every selection
method draws it at least as readily as the hardest known one; for a
selector that prefers low scores (a filter that drops the highest losses,
suspected corrupted labels) it gets the lowest instead, for the same
reason. Early in a
run nearly every candidate is unknown, so selection starts out uniform; an
entry that goes stale is drawn and measured again.

The table lives in the train state (TrainState.selection), so a checkpoint
holds it and a resumed run selects exactly what an uninterrupted one would;
on a mesh it is split over the batch axes like the batch
(accel.parallel.sharding.state_shardings).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class StaleTable(NamedTuple):
  loss_N: jax.Array   # float32: the last training loss of each example
  step_N: jax.Array   # int32: the step it was measured at; -1 never


def init_table(num_examples: int) -> StaleTable:
  return StaleTable(loss_N=jnp.zeros((num_examples,), jnp.float32),
                    step_N=jnp.full((num_examples,), -1, jnp.int32))


def record(table: StaleTable, ids_B: jax.Array, losses_B: jax.Array,
           step: jax.Array) -> StaleTable:
  """The table with the losses of examples `ids_B`, measured at `step`.
  An id that occurs twice keeps one of its losses."""
  ids_B = ids_B.astype(jnp.int32)
  return StaleTable(
      loss_N=table.loss_N.at[ids_B].set(losses_B.astype(jnp.float32)),
      step_N=table.step_N.at[ids_B].set(step.astype(jnp.int32)))


def trusted(table: StaleTable, ids_N: jax.Array, step: jax.Array,
            staleness: int) -> jax.Array:
  """[N] bool: whether each candidate's stored loss is recent enough."""
  seen_N = table.step_N[ids_N]
  return (seen_N >= 0) & (step - seen_N <= staleness)


def scores(table: StaleTable, ids_N: jax.Array, step: jax.Array,
           staleness: int, groups: int = 1,
           untrusted: str = "highest") -> jax.Array:
  """[N] float32: each candidate's stale loss; an untrusted one gets the
  `untrusted` ("highest" or "lowest") trusted score of its group (the
  candidates split into `groups` equal, consecutive groups, as the
  selector splits them), or 0 in a group with none trusted."""
  if untrusted not in ("highest", "lowest"):
    raise ValueError(f"untrusted must be 'highest' or 'lowest', got "
                     f"{untrusted!r}.")
  n = ids_N.shape[0]
  ok_GxM = trusted(table, ids_N, step, staleness).reshape(groups, -1)
  loss_GxM = table.loss_N[ids_N].reshape(groups, -1)
  if untrusted == "highest":
    fill_G = jnp.max(jnp.where(ok_GxM, loss_GxM, -jnp.inf), axis=1)
  else:
    fill_G = jnp.min(jnp.where(ok_GxM, loss_GxM, jnp.inf), axis=1)
  fill_G = jnp.where(jnp.isfinite(fill_G), fill_G, 0.0)
  return jnp.where(ok_GxM, loss_GxM, fill_G[:, None]).reshape(n)
