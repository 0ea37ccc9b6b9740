"""Builds an optax chain from `config.optim`.

    config.optim = dict(name="adamw", learning_rate=1e-3, schedule="cosine",
                        warmup_steps=100, end_lr_factor=0.0,
                        weight_decay=1e-4, decay_mask="no_bias_norm",
                        grad_clip_norm=1.0, **options of the optimizer)

Every optimizer here is optax's or optax.contrib's own. Those with decoupled
weight decay (adamw, nadamw, lamb, lars, lion, schedule-free AdamW, prodigy,
mechanic's AdamW, DoG, Muon) get `weight_decay` and the mask; for the others a
non-zero `weight_decay` adds classic coupled L2 (`optax.add_decayed_weights`
before the step), as torch's `weight_decay` does for SGD, Adam, RMSProp and
Adagrad.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple

import jax
import optax
from optax import contrib

from accel import registry
from accel.errors import ConfigError
from accel.optim import checks
from accel.optim import diagnostics as diagnostics_lib
from accel.optim import gt_transform
from accel.optim import matrices
from accel.optim import meta_attention
from accel.optim import meta_attention_prodigy
from accel.optim import orthogonal
from accel.optim import schedules
from accel.optim import state_lookup

OPTIMIZERS = registry.Registry("optimizer")

# Keys every optimizer section takes, with their defaults.
COMMON_DEFAULTS = {
    "learning_rate": 1e-3, "schedule": "constant", "warmup_steps": 0,
    "end_lr_factor": 0.0, "weight_decay": 0.0, "decay_mask": "no_bias_norm",
    "grad_clip_norm": 0.0,
}


class Optimizer(NamedTuple):
  """An optax transformation and what a training loop needs around it."""
  tx: optax.GradientTransformationExtraArgs
  schedule: optax.Schedule
  # Parameters to evaluate with: schedule-free methods evaluate at a point
  # other than the one they train at.
  eval_params: Callable[[Any, Any], Any]
  # Scalars to log from the state (inside the jitted step), and labelled
  # matrices to draw (on the host): accel.optim.diagnostics.
  diagnostics: Callable[[Any], dict[str, Any]] = diagnostics_lib.none_scalars
  heatmaps: Callable[[Any, Any], dict[str, Any]] = (
      diagnostics_lib.none_heatmaps)


def _no_bias_norm(params):
  # Biases and normalisation scales/offsets are the 0-d and 1-d leaves.
  return jax.tree.map(lambda p: p.ndim > 1, params)


def _coupled_l2(weight_decay, mask):
  def wrap(tx):
    if not weight_decay:
      return tx
    return optax.chain(optax.add_decayed_weights(weight_decay, mask), tx)
  return wrap


@OPTIMIZERS.register("sgd")
def _sgd(lr, weight_decay, mask, momentum: float = 0.9,
         nesterov: bool = False):
  return _coupled_l2(weight_decay, mask)(
      optax.sgd(lr, momentum=momentum or None, nesterov=nesterov))


@OPTIMIZERS.register("adam")
def _adam(lr, weight_decay, mask, mu_dtype, b1: float = 0.9,
          b2: float = 0.999, eps: float = 1e-8):
  return _coupled_l2(weight_decay, mask)(optax.adam(lr, b1, b2, eps,
                                                    mu_dtype=mu_dtype))


@OPTIMIZERS.register("adamw")
def _adamw(lr, weight_decay, mask, mu_dtype, b1: float = 0.9,
           b2: float = 0.999, eps: float = 1e-8):
  return optax.adamw(lr, b1, b2, eps, mu_dtype=mu_dtype,
                     weight_decay=weight_decay, mask=mask)


@OPTIMIZERS.register("nadamw")
def _nadamw(lr, weight_decay, mask, mu_dtype, b1: float = 0.9,
            b2: float = 0.999, eps: float = 1e-8):
  return optax.nadamw(lr, b1, b2, eps, mu_dtype=mu_dtype,
                      weight_decay=weight_decay, mask=mask)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(lr, weight_decay, mask, decay: float = 0.9, eps: float = 1e-8,
             momentum: float = 0.0, centered: bool = False):
  return _coupled_l2(weight_decay, mask)(optax.rmsprop(
      lr, decay=decay, eps=eps, momentum=momentum or None,
      centered=centered))


@OPTIMIZERS.register("adagrad")
def _adagrad(lr, weight_decay, mask, initial_accumulator_value: float = 0.1,
             eps: float = 1e-7):
  return _coupled_l2(weight_decay, mask)(optax.adagrad(
      lr, initial_accumulator_value=initial_accumulator_value, eps=eps))


@OPTIMIZERS.register("lamb")
def _lamb(lr, weight_decay, mask, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-6):
  return optax.lamb(lr, b1, b2, eps, weight_decay=weight_decay, mask=mask)


@OPTIMIZERS.register("lars")
def _lars(lr, weight_decay, mask, momentum: float = 0.9,
          trust_coefficient: float = 0.001, nesterov: bool = False):
  return optax.lars(lr, weight_decay=weight_decay, weight_decay_mask=mask,
                    trust_coefficient=trust_coefficient, momentum=momentum,
                    nesterov=nesterov, trust_ratio_mask=mask)


@OPTIMIZERS.register("lion")
def _lion(lr, weight_decay, mask, mu_dtype, b1: float = 0.9,
          b2: float = 0.99):
  return optax.lion(lr, b1, b2, mu_dtype=mu_dtype, weight_decay=weight_decay,
                    mask=mask)


@OPTIMIZERS.register("schedule_free_adamw")
def _schedule_free_adamw(lr, weight_decay, mask, b1: float = 0.9,
                         b2: float = 0.999, eps: float = 1e-8,
                         weight_lr_power: float = 2.0):
  del mask  # optax's schedule-free AdamW decays every parameter.
  return contrib.schedule_free_adamw(
      lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
      weight_lr_power=weight_lr_power)


@OPTIMIZERS.register("prodigy")
def _prodigy(lr, weight_decay, mask, b1: float = 0.9, b2: float = 0.999,
             eps: float = 1e-8, estim_lr0: float = 1e-6,
             safeguard_warmup: bool = False):
  # Prodigy estimates the step size itself: learning_rate is a multiplier on
  # its estimate and is normally left at 1.0.
  del mask  # optax's prodigy decays every parameter.
  return contrib.prodigy(lr, betas=(b1, b2), eps=eps, estim_lr0=estim_lr0,
                         weight_decay=weight_decay,
                         safeguard_warmup=safeguard_warmup)


@OPTIMIZERS.register("mechanic")
def _mechanic(lr, weight_decay, mask, mu_dtype, b1: float = 0.9,
              b2: float = 0.999, eps: float = 1e-8,
              mechanic_weight_decay: float = 0.01, s_init: float = 1e-6):
  # Mechanic learns a global scale for the base optimizer's updates.
  base = optax.adamw(lr, b1, b2, eps, mu_dtype=mu_dtype,
                     weight_decay=weight_decay, mask=mask)
  return contrib.mechanize(base, weight_decay=mechanic_weight_decay,
                           s_init=s_init)


@OPTIMIZERS.register("dog")
def _dog(lr, weight_decay, mask, reps_rel: float = 1e-6, eps: float = 1e-8):
  # DoG ("distance over gradients") sets its own step size: learning_rate is
  # a multiplier on it (1.0 by default); reps_rel sizes the first step
  # relative to the parameters (the paper's r_epsilon).
  return contrib.dog(lr, init_step=("heuristic", reps_rel), eps=eps,
                     weight_decay=weight_decay or None, mask=mask)


@OPTIMIZERS.register("muon")
def _muon(lr, weight_decay, mask, mu_dtype, beta: float = 0.95,
          ns_steps: int = 5, nesterov: bool = True,
          consistent_rms: float = 0.2, adam_b1: float = 0.9,
          adam_b2: float = 0.999, eps: float = 1e-8,
          adam_params: str = matrices.INPUT_OUTPUT):
  # optax.contrib's hybrid: Muon on the hidden layers' kernels
  # (accel.optim.matrices), AdamW on every other leaf. consistent_rms
  # scales Muon's updates to AdamW's RMS, so one learning rate (AdamW's
  # range) serves both halves. optax's AdamW half decays every leaf it
  # holds; the mask applies to the Muon half.
  return contrib.muon(
      lr, ns_steps=ns_steps, beta=beta, eps=eps, weight_decay=weight_decay,
      weight_decay_mask=mask, mu_dtype=mu_dtype, nesterov=nesterov,
      adam_b1=adam_b1, adam_b2=adam_b2, adam_weight_decay=weight_decay,
      consistent_rms=consistent_rms,
      muon_weight_dimension_numbers=lambda p: matrices.hidden_matrices(
          p, adam_params))


def _rows(rows_per_step, name: str):
  """The rows a Newton-Schulz cost rule weighs: a count, or a mapping of
  kernel paths to counts (accel.optim.orthogonal)."""
  if not rows_per_step:
    raise ConfigError(
        f"optimizer {name!r} needs config.optim.rows_per_step: the examples "
        "(or, for a sequence model, tokens) through each layer a step, for "
        f"its Newton-Schulz cost rule; got {rows_per_step}.")
  return orthogonal.check_rows(rows_per_step)


@OPTIMIZERS.register("orthogonal_hybrid")
def _orthogonal_hybrid(lr, weight_decay, mask, mu_dtype,
                       rows_per_step: int = 0, max_cost: float = 0.5,
                       beta: float = 0.95, b1: float = 0.9,
                       b2: float = 0.999, eps: float = 1e-8):
  # Muon where Newton-Schulz costs at most max_cost of the layer's own
  # work, NAdamW elsewhere (accel.optim.orthogonal).
  return orthogonal.hybrid(
      lr, rows_per_step=_rows(rows_per_step, "orthogonal_hybrid"),
      max_cost=max_cost, beta=beta, b1=b1, b2=b2, eps=eps,
      weight_decay=weight_decay, mask=mask, mu_dtype=mu_dtype)


@OPTIMIZERS.register("gradient_transformer")
def _gradient_transformer(lr, weight_decay, mask, mu_dtype,
                          rows_per_step: int = 0, weights: str = "default",
                          max_cost: float = 0.5,
                          max_mix: float = gt_transform.DEFAULT_MAX_MIX,
                          b3: float = 0.99, meta_lr: bool = False):
  # The orthogonal hybrid with the learned direction correction
  # (accel.optim.gt_transform); weights: "default" (shipped), a weights
  # file, or "none" (the hybrid exactly). meta_lr: the meta-attention
  # learning rates (default options) replace the plain learning-rate
  # scaling after it.
  direction = gt_transform.scale_by_gradient_transformer(
      None if weights == "none" else weights,
      rows_per_step=_rows(rows_per_step, "gradient_transformer"),
      max_cost=max_cost, max_mix=max_mix, b3=b3, weight_decay=weight_decay,
      mask=mask, learning_rate=lr, mu_dtype=mu_dtype)
  scale = (meta_attention.scale_by_meta_attention_lr(lr) if meta_lr
           else optax.scale_by_learning_rate(lr))
  return optax.chain(direction, scale)


def _adapt_steps(adapt_fraction: float, total_steps: int) -> int | None:
  """adapt_fraction: the share of the run during which the level (and the
  network) learn, before the schedule's decay pulls the estimate up (1:
  throughout; None steps). See meta_attention.scale_by_meta_attention_lr."""
  checks.check("adapt_fraction", adapt_fraction, lambda x: 0 <= x <= 1,
               "in [0, 1]")
  return (None if adapt_fraction >= 1
          else int(round(adapt_fraction * total_steps)))


def _adapt_start(adapt_start_fraction: float, adapt_fraction: float,
                 total_steps: int) -> int | None:
  """adapt_start_fraction: the share of the run before the level (and the
  network) starts learning (0: from the first step)."""
  checks.check("adapt_start_fraction", adapt_start_fraction,
               lambda x: 0 <= x <= adapt_fraction,
               f"in [0, adapt_fraction={adapt_fraction}]")
  return (int(round(adapt_start_fraction * total_steps))
          if adapt_start_fraction else None)


@OPTIMIZERS.register("meta_attention_adamw")
def _meta_attention_adamw(lr, weight_decay, mask, mu_dtype, b1: float = 0.9,
                          b2: float = 0.999, eps: float = 1e-8,
                          num_heads: int = 2, window: int = 16,
                          width: int = 16, hyper_lr: float = 1e-4,
                          max_multiplier: float = 10.0,
                          anchor: float = 1e-3, horizon: float = 100.0,
                          update_every: int = 1, level_rate: float = 1.0,
                          max_level_step: float | None = None,
                          max_level_rise: float | None = None,
                          learn_groups: bool = False,
                          adapt_fraction: float = 0.4,
                          adapt_start_fraction: float = 0.0, *,
                          total_steps: int):
  adapt_steps = _adapt_steps(adapt_fraction, total_steps)
  return meta_attention.meta_attention_adamw(
      lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=mask,
      num_heads=num_heads, window=window, width=width, hyper_lr=hyper_lr,
      max_multiplier=max_multiplier, anchor=anchor, horizon=horizon,
      update_every=update_every, mu_dtype=mu_dtype, level_rate=level_rate,
      max_level_step=max_level_step, max_level_rise=max_level_rise,
      adapt_steps=adapt_steps, learn_groups=learn_groups,
      adapt_start=_adapt_start(adapt_start_fraction, adapt_fraction,
                               total_steps))


@OPTIMIZERS.register("meta_attention_prodigy")
def _meta_attention_prodigy(lr, weight_decay, mask, b1: float = 0.9,
                            b2: float = 0.999, eps: float = 1e-8,
                            estim_lr0: float = 1e-6,
                            max_multiplier: float = 3.0,
                            horizon: float = 100.0, level_rate: float = 1.0,
                            adapt_fraction: float = 0.4,
                            adapt_start_fraction: float = 0.0, *,
                            total_steps: int):
  # learning_rate: a multiplier on Prodigy's estimate (normally 1.0);
  # adapt_fraction as for meta_attention_adamw; the level is held until
  # adapt_start_fraction of the run.
  del mask  # optax's prodigy decays every parameter.
  adapt_steps = _adapt_steps(adapt_fraction, total_steps)
  return meta_attention_prodigy.meta_attention_prodigy(
      lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
      estim_lr0=estim_lr0, max_multiplier=max_multiplier, horizon=horizon,
      level_rate=level_rate,
      adapt_start=_adapt_start(adapt_start_fraction, adapt_fraction,
                               total_steps),
      adapt_steps=adapt_steps)


def eval_params(opt_state, params):
  """The parameters to evaluate: schedule-free's averaged point, else params."""
  state = state_lookup.find_state(opt_state, contrib.ScheduleFreeState)
  if state is None:
    return params
  return contrib.schedule_free_eval_params(state, params)


def _takes(fn, name: str) -> bool:
  """Whether the builder `fn` has a parameter `name` (mu_dtype,
  total_steps): the factory passes those only to builders that take them."""
  return name in inspect.signature(fn).parameters


def needs_rows(config) -> bool:
  """Whether optimizer section `config` has a Newton-Schulz cost rule that
  waits for the rows a step (`make`'s `rows_per_step`): its builder takes
  them and the section does not set them."""
  fn = OPTIMIZERS.get(config.get("name")) if config.get("name") in (
      OPTIMIZERS.names) else None
  return (fn is not None and _takes(fn, "rows_per_step")
          and not config.get("rows_per_step"))


def make(config, total_steps: int, *, mu_dtype: Any = None,
         rows_per_step: orthogonal.Rows = 0) -> Optimizer:
  """The optimizer named by `config.name`, with schedule, clipping and decay.

  `mu_dtype` (from the precision policy) is the first moment's dtype for the
  optimizers that keep one as Adam does; None keeps the parameters' dtype.
  `rows_per_step` (examples, or tokens for a sequence model, through each
  layer a step; or per kernel path, accel.models.kernel_rows) goes to the
  optimizers with a Newton-Schulz cost rule whose section leaves its own
  `rows_per_step` at 0.
  """
  options = dict(config)
  name = options.pop("name", None)
  common = {k: options.pop(k, v) for k, v in COMMON_DEFAULTS.items()}
  if name is None:
    raise ConfigError("config.optim needs a 'name', one of "
                      f"{OPTIMIZERS.names}.")
  fn = OPTIMIZERS.get(name)
  registry.check_options(fn, options, f"optimizer {name!r}")
  checks.check_learning_rate(common["learning_rate"],
                             "config.optim.learning_rate")
  for key in ("weight_decay", "grad_clip_norm", "end_lr_factor"):
    checks.check(f"config.optim.{key}", common[key], lambda x: x >= 0,
                 ">= 0")
  schedule = schedules.make_schedule(
      common["learning_rate"], total_steps, common["schedule"],
      common["warmup_steps"], common["end_lr_factor"])
  decay_mask = common["decay_mask"]
  if decay_mask not in ("no_bias_norm", "all"):
    raise ConfigError(f"decay_mask must be 'no_bias_norm' or 'all', got "
                      f"{decay_mask!r}.")
  mask = _no_bias_norm if decay_mask == "no_bias_norm" else None
  if _takes(fn, "total_steps"):
    options["total_steps"] = total_steps
  if _takes(fn, "rows_per_step") and not options.get("rows_per_step"):
    options["rows_per_step"] = rows_per_step
  if _takes(fn, "mu_dtype"):
    tx = fn(schedule, common["weight_decay"], mask, mu_dtype, **options)
  elif mu_dtype is not None:
    supported = [n for n in OPTIMIZERS.names
                 if _takes(OPTIMIZERS.get(n), "mu_dtype")]
    raise ConfigError(
        f"optimizer {name!r} cannot keep its first moment in {mu_dtype}; "
        f"config.precision.first_moment applies to {supported}.")
  else:
    tx = fn(schedule, common["weight_decay"], mask, **options)
  clip = common["grad_clip_norm"]
  if clip:
    tx = optax.chain(optax.clip_by_global_norm(clip), tx)
  # Lets the train step pass the loss as `value=` to every transform; those
  # that do not take it ignore it.
  return Optimizer(optax.with_extra_args_support(tx), schedule, eval_params,
                   diagnostics_lib.scalars, diagnostics_lib.heatmaps)
