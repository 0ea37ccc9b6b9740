"""The train state: everything but the data iterator that a run resumes from."""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from accel import models
from accel.spec import DataSpec
from accel.optim import Optimizer


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: updates applied so far
  params: Any
  opt_state: Any
  rng: jax.Array  # base key; step t uses fold_in(rng, t), so resume is exact
  # Batch selection's own state (the stale_loss scorer's table,
  # accel.selection.stale), or None.
  selection: Any = None
  # Pruning masks, boolean trees like params (accel.train.prune), or None.
  masks: Any = None


def init_state(model: nn.Module, optimizer: Optimizer, spec: DataSpec,
               seed, selector=None, pruning: bool = False) -> TrainState:
  """A fresh state. Pure, so `jax.eval_shape` of it gives restore targets.
  `seed` is an int or an int32 scalar (traced, so one init program serves
  every seed); a `selector` (accel.selection.Selector) adds its state,
  `pruning` masks that keep every weight."""
  init_rng, train_rng = jax.random.split(jax.random.PRNGKey(seed))
  variables = model.init(init_rng, models.dummy_inputs(spec), train=False)
  params = nn.unbox(variables["params"])
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      opt_state=optimizer.tx.init(params), rng=train_rng,
      selection=(None if selector is None
                 else selector.init_state(spec.num_train)),
      masks=(jax.tree.map(lambda p: jnp.ones(p.shape, bool), params)
             if pruning else None))


def param_shapes(params) -> dict[str, list[int]]:
  """`{'/'-joined path: shape}` of every parameter, for checkpoint checks."""
  flat = flax.traverse_util.flatten_dict(params, sep="/")
  return {k: list(np.shape(v)) for k, v in sorted(flat.items())}


def num_params(params) -> int:
  return int(sum(np.prod(np.shape(p)) for p in jax.tree.leaves(params)))
