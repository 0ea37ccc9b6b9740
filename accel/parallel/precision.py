"""The precision policy: what runs in bfloat16 and what stays float32.

    config.precision = dict(compute="bfloat16", first_moment="float32")

`compute` is the dtype of the models' matrix multiplies, convolutions and
activations. Whatever it is, parameters and the optimizer state are float32
(the master weights), and the models keep softmax, logits, the loss and the
normalisation statistics in float32 (see accel.models). bfloat16 has
float32's exponent range, so no loss scaling is needed. `first_moment`
"bfloat16" halves the memory of the first moment of the optimizers built on
Adam (adam, adamw, nadamw, lion, mechanic, meta_attention_adamw).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import ml_collections

from accel.errors import ConfigError

DTYPES = ("float32", "bfloat16")
DEFAULTS = {"compute": "float32", "first_moment": "float32"}


@dataclasses.dataclass(frozen=True)
class Policy:
  compute: str = "float32"
  first_moment: str = "float32"

  def __post_init__(self):
    for key in ("compute", "first_moment"):
      value = getattr(self, key)
      if value not in DTYPES:
        raise ConfigError(f"config.precision.{key} must be one of {DTYPES}, "
                          f"got {value!r}.")

  @property
  def compute_dtype(self):
    return jnp.dtype(self.compute)

  @property
  def mu_dtype(self):
    """The optimizer's first-moment dtype; None keeps the parameters'."""
    return None if self.first_moment == "float32" else jnp.dtype(
        self.first_moment)

  def model_config(self, model_config) -> ml_collections.ConfigDict:
    """`config.model` with the compute dtype set and float32 parameters.

    A model section that asks for a compute dtype other than float32 and
    other than the policy's is a contradiction and raises ValueError.
    """
    out = ml_collections.ConfigDict(model_config.to_dict())
    if "dtype" not in out:
      if self.compute != "float32":
        raise ConfigError(
            f"model {out.get('name')!r} has no compute dtype option, so "
            f"config.precision.compute={self.compute!r} cannot apply to it.")
      return out
    asked = str(jnp.dtype(out.dtype))
    if asked not in ("float32", self.compute):
      raise ConfigError(
          f"config.model.dtype={asked!r} contradicts config.precision."
          f"compute={self.compute!r}; set the compute dtype through "
          "config.precision only.")
    out.dtype = self.compute
    return out


def policy(config) -> Policy:
  """The Policy of `config.precision` (a dict with DEFAULTS' keys)."""
  options = dict(config)
  unknown = sorted(set(options) - set(DEFAULTS))
  if unknown:
    raise ConfigError(f"Unknown precision option {unknown[0]!r}. Accepted "
                      f"options: {sorted(DEFAULTS)}.")
  return Policy(**{**DEFAULTS, **options})
