"""The compiled, sharded pieces of a run: state init, train step, eval step.

`compile_steps(config, model, optimizer, spec, selector)` builds the mesh
from `config.mesh`, derives every state sharding from the parameters'
logical names and `config.axis_rules`, and jits

  init()                 -> state, created sharded (never whole on one device)
  train(state, batch)    -> (state, metrics), state donated
  evaluate(state, batch) -> sums

with explicit in/out shardings, so the second call of each never
recompiles. A notebook or a benchmark uses it as `run()` does.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

from accel import data
from accel import models
from accel import optim
from accel import parallel
from accel.data import DataSpec
from accel.data import selection
from accel.optim import Optimizer
from accel.train import state as state_lib
from accel.train import step as step_lib


@dataclasses.dataclass(frozen=True)
class Steps:
  mesh: jax.sharding.Mesh
  rules: tuple
  abstract_state: Any       # ShapeDtypeStructs carrying the shardings
  shardings: Any            # a NamedSharding per state leaf
  init: Callable[[], Any]
  train: Callable[[Any, Any], Any]
  evaluate: Callable[[Any, Any], Any]
  replicated_share: float   # of the parameter bytes

  @property
  def block_each_step(self) -> bool:
    """Whether a loop must wait for each step before dispatching the next.

    XLA:CPU can deadlock in its all-reduce rendezvous when several sharded
    programs are in flight (jax issue 25861); simulated CPU meshes block.
    """
    return self.mesh.size > 1 and self.mesh.devices.flat[0].platform == "cpu"

  def train_batch(self, local_batch):
    """A global batch from this process's rows (see parallel.global_batch)."""
    return parallel.global_batch(local_batch, self.mesh, self.rules)

  def eval_batch(self, batch):
    """A global batch from a batch every process holds in full."""
    return parallel.replicated_batch(batch, self.mesh, self.rules)


def boxed_param_shapes(model: nn.Module, spec: DataSpec) -> Any:
  """The parameters' shapes, still boxed with their logical axis names."""
  variables = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), models.dummy_inputs(spec),
                         train=False))
  return variables["params"]


def compile_steps(config, model: nn.Module, optimizer: Optimizer,
                  spec: DataSpec, selector=None,
                  mesh: jax.sharding.Mesh | None = None) -> Steps:
  """Mesh, shardings and the jitted steps for `config` (see module doc).

  `mesh` overrides `config.mesh` (a test or a notebook may pass its own).
  Raises ValueError when a batch size does not split over the mesh's batch
  axes or too much of the model would be replicated.
  """
  mesh = mesh if mesh is not None else parallel.make_mesh(config.mesh)
  rules = parallel.mesh.check_axis_rules(config.axis_rules)
  for key in ("batch_size", "eval_batch_size"):
    parallel.check_batch_size(config[key], mesh, rules, f"config.{key}")

  # The seed is an argument of the init program, not a constant in it, so
  # runs that differ only in their seed (a benchmark's seeds) compile it
  # once.
  init = functools.partial(state_lib.init_state, model, optimizer, spec)
  if not 0 <= config.seed < 2**31:
    raise ValueError(f"config.seed must be in [0, 2**31), got {config.seed}.")
  seed = np.int32(config.seed)
  abstract = jax.eval_shape(init, seed)
  boxed = boxed_param_shapes(model, spec)
  shardings = parallel.state_shardings(abstract, boxed, mesh, rules)
  share = parallel.check_replication(abstract.params, shardings.params, mesh,
                                     config.max_replicated_share)

  batch = parallel.batch_sharding(mesh, rules)  # a prefix: every batch leaf
  rep = parallel.replicated(mesh)
  train = jax.jit(
      functools.partial(step_lib.train_step, model=model, optimizer=optimizer,
                        selector=selector),
      in_shardings=(shardings, batch), out_shardings=(shardings, rep),
      donate_argnames="state")
  evaluate = jax.jit(
      functools.partial(step_lib.eval_step, model=model, optimizer=optimizer),
      in_shardings=(shardings, batch), out_shardings=rep)
  return Steps(mesh=mesh, rules=rules,
               abstract_state=parallel.with_shardings(abstract, shardings),
               shardings=shardings,
               init=functools.partial(
                   jax.jit(init, out_shardings=shardings), seed),
               train=train, evaluate=evaluate, replicated_share=share)


@dataclasses.dataclass(frozen=True)
class Parts:
  """Everything a run builds from its config before the first step."""
  source: data.Source
  model: nn.Module
  optimizer: Optimizer
  selector: Any
  steps: Steps


def build(config, mesh: jax.sharding.Mesh | None = None) -> Parts:
  """Source, model (under the precision policy), optimizer, selector and
  compiled steps for `config`."""
  source = data.make_source(config.data)
  policy = parallel.policy(config.precision)
  model = models.make(policy.model_config(config.model), source.spec)
  optimizer = optim.make(config.optim, config.total_steps,
                         mu_dtype=policy.mu_dtype)
  mesh = mesh if mesh is not None else parallel.make_mesh(config.mesh)
  selector = selection.make_selector(
      config, model, source, mesh, parallel.mesh.batch_axes(
          parallel.mesh.check_axis_rules(config.axis_rules)))
  steps = compile_steps(config, model, optimizer, source.spec, selector, mesh)
  return Parts(source, model, optimizer, selector, steps)


def describe(steps: Steps) -> str:
  """One line on the mesh and how the parameters are split."""
  params = steps.abstract_state.params
  total = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  return (f"mesh {dict(steps.mesh.shape)} over {steps.mesh.size} devices; "
          f"{total:,} parameters, {steps.replicated_share:.0%} of their "
          "bytes replicated")
