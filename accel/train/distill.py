"""Knowledge distillation: a finished run teaches the student in the same
jitted step.

`config.distill`:
  teacher      a finished run's workdir ('' = off); its config.json and its
               newest checkpoint are read
  temperature  T of the soft targets (> 0)
  alpha        weight of the soft term: (1 - alpha) * hard + alpha * soft

The soft term is Hinton et al.'s (arXiv 1503.02531): the KL divergence from
the teacher's softmax at temperature T to the student's, times T^2 so that
its gradients keep their scale as T changes, averaged over the same targets
(and with the same selection weights) as the hard cross-entropy. The
teacher runs in eval mode in the student's compute dtype, its parameters
sharded like the student's; a teacher whose data spec differs from the
student's is refused, naming the difference.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from accel.errors import ConfigError
from accel.errors import MissingFileError
from accel.spec import DataSpec

DEFAULTS = {"teacher": "", "temperature": 2.0, "alpha": 0.5}
# What the teacher's outputs must agree with; the example counts may differ
# (a teacher trained on more or fewer examples of the same set is fine).
_SPEC_FIELDS = ("name", "task", "input_shape", "input_dtype", "num_classes",
                "input_vocab_size")


@dataclasses.dataclass(frozen=True)
class Distill:
  """The static half of distillation (the teacher's parameters are an
  argument of the train step)."""
  model: nn.Module
  temperature: float
  alpha: float


def check_section(section) -> None:
  unknown = sorted(set(section.keys()) - set(DEFAULTS))
  if unknown:
    raise ConfigError(f"Unknown distill option {unknown[0]!r}. Accepted "
                      f"options: {sorted(DEFAULTS)}.")
  if not section.temperature > 0:
    raise ConfigError("config.distill.temperature must be > 0, got "
                      f"{section.temperature}.")
  if not 0 <= section.alpha <= 1:
    raise ConfigError("config.distill.alpha is the soft term's weight in "
                      f"[0, 1], got {section.alpha}.")


def _tuples(value):
  """JSON lists back to the tuples the config held."""
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  return value


def teacher_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a finished run in `workdir` was trained with."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise MissingFileError(
        f"config.distill.teacher {workdir!r} is not a run's workdir (no "
        "config.json there); give the --workdir of a finished run.")
  with open(path) as f:
    return ml_collections.ConfigDict(_tuples(json.load(f)))


def spec_differences(teacher: DataSpec, student: DataSpec) -> list[str]:
  return [f"{f}: {getattr(teacher, f)!r} (teacher) vs "
          f"{getattr(student, f)!r} (student)" for f in _SPEC_FIELDS
          if getattr(teacher, f) != getattr(student, f)]


def check_specs(teacher: DataSpec, student: DataSpec, workdir: str) -> None:
  diffs = spec_differences(teacher, student)
  if diffs:
    raise ConfigError(
        f"The teacher in {workdir!r} was trained on other data than the "
        "student, so its outputs cannot be targets: " + "; ".join(diffs)
        + ".")


def soft_loss_BxT(student_logits_BxTxC, teacher_logits_BxTxC,
                  temperature: float) -> jax.Array:
  """T^2 * KL(softmax(teacher / T) || softmax(student / T)) per target."""
  t = temperature
  teacher_logp = jax.nn.log_softmax(
      teacher_logits_BxTxC.astype(jnp.float32) / t, axis=-1)
  student_logp = jax.nn.log_softmax(
      student_logits_BxTxC.astype(jnp.float32) / t, axis=-1)
  kl = jnp.sum(jnp.exp(teacher_logp) * (teacher_logp - student_logp), -1)
  return (t * t) * kl


def teacher_logits(distill: Distill, teacher_params: Any, inputs) -> jax.Array:
  """The teacher's logits in eval mode, outside the gradient."""
  logits = distill.model.apply({"params": teacher_params}, inputs,
                               train=False)
  return jax.lax.stop_gradient(logits)
