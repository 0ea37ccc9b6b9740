"""The one builder from a config to a run's parts.

`build(config)` makes the data source, the model (under the precision
policy of `config.precision`), the optimizer, the batch selector and the
compiled steps. Every user of a config goes through it: the train loop, the
irreducible-loss table, the overhead timer, meta-training tasks and the
benchmark trials, so each gets the precision policy and the mesh.

`compile_steps(config, model, optimizer, spec, selector)` builds the mesh
from `config.mesh`, derives every state sharding from the parameters'
logical names and `config.axis_rules`, and jits

  init()                 -> state, created sharded (never whole on one device)
  train(state, batch)    -> (state, metrics), state donated
  evaluate(state, batch) -> sums

with explicit in/out shardings, so the second call of each never
recompiles.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

from accel import data
from accel import models
from accel import optim
from accel import parallel
from accel import selection
from accel.errors import ConfigError
from accel.errors import MissingFileError
from accel.optim import matrices
from accel.optim import Optimizer
from accel.spec import DataSpec
from accel.train import checkpoint
from accel.train import distill as distill_lib
from accel.train import prune as prune_lib
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
  # With batch selection: the same step with selection switched off (the
  # break-even controller runs it while selection does not pay).
  train_passive: Callable[[Any, Any], Any] | None = None
  # The selecting step at config.selection.controller_ratios' fewer
  # candidates each (the controller's cheaper arms; empty without them).
  train_cheaper: tuple[Callable[[Any, Any], Any], ...] = ()

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


def _variable_shapes(model: nn.Module, spec: DataSpec) -> Any:
  """Every variable collection's shapes, boxed with their axis names."""
  return jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), models.dummy_inputs(spec),
                         train=False))


def boxed_param_shapes(model: nn.Module, spec: DataSpec) -> Any:
  """The parameters' shapes, still boxed with their logical axis names."""
  return _variable_shapes(model, spec)["params"]


class _WithTeacher:
  """The jitted distilling step with the teacher's parameters bound, so
  that callers keep calling `train(state, batch)`."""

  def __init__(self, jitted, teacher_params):
    self._jitted, self._teacher = jitted, teacher_params

  def __call__(self, state, batch):
    return self._jitted(state, batch, self._teacher)

  def lower(self, state, batch):
    return self._jitted.lower(state, batch, self._teacher)


def compile_steps(config, model: nn.Module, optimizer: Optimizer,
                  spec: DataSpec, selector=None,
                  mesh: jax.sharding.Mesh | None = None,
                  teacher: Teacher | None = None) -> Steps:
  """Mesh, shardings and the jitted steps for `config` (see module doc).

  `mesh` overrides `config.mesh` (a test or a notebook may pass its own);
  `teacher` (see load_teacher) makes the train step distil from it.
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
  pruning = prune_lib.resolve(config.prune, config.total_steps)
  init = functools.partial(state_lib.init_state, model, optimizer, spec,
                           selector=selector, pruning=pruning is not None)
  if not 0 <= config.seed < 2**31:
    raise ConfigError(f"config.seed must be in [0, 2**31), got {config.seed}.")
  seed = np.int32(config.seed)
  abstract = jax.eval_shape(init, seed)
  boxed = boxed_param_shapes(model, spec)
  shardings = parallel.state_shardings(abstract, boxed, mesh, rules,
                                       optimizer.tx)
  share = parallel.check_replication(abstract.params, shardings.params, mesh,
                                     config.max_replicated_share)

  batch = parallel.batch_sharding(mesh, rules)  # a prefix: every batch leaf
  rep = parallel.replicated(mesh)

  def jit_step(sel):
    step = functools.partial(step_lib.train_step, model=model,
                             optimizer=optimizer, selector=sel,
                             pruning=pruning)
    if teacher is None:
      return jax.jit(step, in_shardings=(shardings, batch),
                     out_shardings=(shardings, rep), donate_argnames="state")
    return _WithTeacher(jax.jit(
        functools.partial(step, distill=teacher.distill),
        in_shardings=(shardings, batch, teacher.shardings),
        out_shardings=(shardings, rep), donate_argnames="state"),
        teacher.params)
  train = jit_step(selector)
  # jit compiles on first use: a run that never switches pays nothing.
  passive = None if selector is None else jit_step(selector.passive_copy())
  cheaper = () if selector is None else tuple(
      jit_step(selector.with_ratio(float(r)))
      for r in config.selection.controller_ratios)
  evaluate = jax.jit(
      functools.partial(step_lib.eval_step, model=model, optimizer=optimizer),
      in_shardings=(shardings, batch), out_shardings=rep)
  return Steps(mesh=mesh, rules=rules,
               abstract_state=parallel.with_shardings(abstract, shardings),
               shardings=shardings,
               init=functools.partial(
                   jax.jit(init, out_shardings=shardings), seed),
               train=train, evaluate=evaluate, replicated_share=share,
               train_passive=passive, train_cheaper=cheaper)


@dataclasses.dataclass(frozen=True)
class Teacher:
  """A finished run's model and evaluation parameters, on the student's
  mesh."""
  distill: distill_lib.Distill
  params: Any
  shardings: Any
  workdir: str


def load_teacher(config, spec: DataSpec, mesh: jax.sharding.Mesh) -> Teacher:
  """The teacher of `config.distill` (see accel/train/distill.py): its
  config from its workdir, its data spec checked against the student's
  `spec`, its model built under the student's precision policy, and the
  parameters it evaluates with (schedule-free's averaged ones, for
  example) restored from its newest checkpoint onto `mesh`, sharded by the
  student's axis rules."""
  section = config.distill
  workdir = section.teacher
  teacher_config = distill_lib.teacher_config(workdir)
  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    raise MissingFileError(f"The teacher in {workdir!r} has no checkpoints "
                           "directory: train it first.")
  teacher_config.precision = config.precision
  teacher_config.axis_rules = config.axis_rules
  # The same data section gives the same spec: build the teacher's data set
  # only when its section differs.
  if teacher_config.data.to_dict() != config.data.to_dict():
    distill_lib.check_specs(data.make_source(teacher_config.data).spec, spec,
                            workdir)
  model = make_model(teacher_config, spec)
  optimizer = make_optimizer(teacher_config, spec, model)
  steps = compile_steps(teacher_config, model, optimizer, spec, mesh=mesh)
  ckpt = checkpoint.Checkpointer(
      workdir, checkpoint.run_meta(teacher_config,
                                   steps.abstract_state.params), 1)
  restored = ckpt.restore_latest(steps.abstract_state)
  ckpt.close()
  if restored is None:
    raise MissingFileError(f"The teacher in {workdir!r} has no checkpoint: "
                           "train it first.")
  state = restored[0]
  params = optimizer.eval_params(state.opt_state, state.params)
  return Teacher(
      distill=distill_lib.Distill(model, float(section.temperature),
                                  float(section.alpha)),
      params=params, shardings=steps.shardings.params, workdir=workdir)


@dataclasses.dataclass(frozen=True)
class Parts:
  """Everything a run builds from its config before the first step."""
  source: data.Source
  model: nn.Module
  optimizer: Optimizer
  selector: Any
  steps: Steps | None  # None when built with with_steps=False
  teacher: Teacher | None = None  # config.distill's


def make_model(config, spec: DataSpec) -> nn.Module:
  """`config.model` built for `spec` under `config.precision`'s policy, its
  blocks under `config.remat` (resolve "auto" first: accel.train.remat)."""
  if config.remat == "auto":
    raise ConfigError("config.remat='auto' is resolved by measuring "
                      "(accel.train.remat.resolve) before the model is "
                      "built.")
  policy = parallel.policy(config.precision)
  return models.make(policy.model_config(config.model), spec,
                     remat=config.remat,
                     remat_names=tuple(config.remat_names))


def rows_per_step(batch_size: int, spec: DataSpec) -> int:
  """Examples through each layer a step, tokens for a model of token
  sequences: what a Newton-Schulz cost rule weighs against, for a model
  whose kernels each act once per example or token (see `kernel_rows`)."""
  tokens = (int(np.prod(spec.input_shape)) if spec.input_dtype == "int32"
            else 1)
  return int(batch_size) * tokens


def kernel_rows(model: nn.Module, spec: DataSpec,
                batch_size: int) -> dict[str, int]:
  """{kernel path: rows it multiplies in a forward pass of `batch_size`
  examples of `spec`} (accel.models.kernel_rows: a convolution's output
  positions and a recurrence's steps included), for the parameters a
  kernel multiplies; traced, nothing computed."""
  variables = nn.meta.unbox(_variable_shapes(model, spec))
  params = variables.pop("params")
  x = jax.ShapeDtypeStruct((int(batch_size),) + tuple(spec.input_shape),
                           np.dtype(spec.input_dtype))
  rows = models.kernel_rows(
      lambda p, rest, x: model.apply({"params": p, **rest}, x, train=False),
      params, variables, x)
  return {matrices.path(keys): r for keys, r in
          jax.tree_util.tree_leaves_with_path(rows) if r}


def optimizer_rows(model: nn.Module, spec: DataSpec, batch_size: int):
  """What a Newton-Schulz cost rule weighs: each kernel's rows
  (`kernel_rows`), or one count (`rows_per_step`) for a model with no
  kernel found."""
  return (kernel_rows(model, spec, batch_size)
          or rows_per_step(batch_size, spec))


def make_optimizer(config, spec: DataSpec,
                   model: nn.Module | None = None) -> Optimizer:
  """`config.optim` over `config.total_steps`, with the precision policy's
  first-moment dtype and the rows a step of `spec`'s batches: per kernel
  (`kernel_rows`) when `model` is given and the optimizer has a
  Newton-Schulz cost rule, else one count (`rows_per_step`)."""
  policy = parallel.policy(config.precision)
  if model is not None and optim.needs_rows(config.optim):
    rows = optimizer_rows(model, spec, config.batch_size)
  else:
    rows = rows_per_step(config.batch_size, spec)
  return optim.make(config.optim, config.total_steps,
                    mu_dtype=policy.mu_dtype, rows_per_step=rows)


def make_selector(config, model: nn.Module, source: data.Source,
                  mesh: jax.sharding.Mesh):
  """`config.selection`'s selector (None when off), its candidates split
  over `mesh`'s batch axes; a reducible_loss scorer's table is read here."""
  section = config.selection
  table = None
  if section.scorer == "reducible_loss" and section.irreducible_table:
    table = selection.load_table(section.irreducible_table, source,
                                 config.data)
  rules = parallel.mesh.check_axis_rules(config.axis_rules)
  return selection.make_selector(
      section, batch_size=config.batch_size, seed=config.seed,
      source=source, model=model, mesh=mesh,
      batch_axes=parallel.mesh.batch_axes(rules), irreducible_N=table)


def candidates_per_step(config) -> int:
  """Examples the input pipeline yields per step (the candidates when
  batch selection is on)."""
  return selection.candidate_batch_size(config.selection, config.batch_size)


def build(config, mesh: jax.sharding.Mesh | None = None, *,
          with_steps: bool = True) -> Parts:
  """Source, model, optimizer, selector and compiled steps for `config`.

  `mesh` overrides `config.mesh`; `with_steps=False` compiles nothing (for
  callers that run the model their own way, such as meta-training).
  """
  source = data.make_source(config.data)
  model = make_model(config, source.spec)
  optimizer = make_optimizer(config, source.spec, model)
  mesh = mesh if mesh is not None else parallel.make_mesh(config.mesh)
  selector = make_selector(config, model, source, mesh)
  teacher = (load_teacher(config, source.spec, mesh)
             if with_steps and config.distill.teacher else None)
  steps = (compile_steps(config, model, optimizer, source.spec, selector,
                         mesh, teacher) if with_steps else None)
  return Parts(source, model, optimizer, selector, steps, teacher)


def describe(steps: Steps) -> str:
  """One line on the mesh and how the parameters are split."""
  params = steps.abstract_state.params
  total = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  return (f"mesh {dict(steps.mesh.shape)} over {steps.mesh.size} devices; "
          f"{total:,} parameters, {steps.replicated_share:.0%} of their "
          "bytes replicated")
