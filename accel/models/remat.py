"""Activation checkpointing per block (`jax.checkpoint` through flax's
`nn.remat`): which of a block's activations the backward pass keeps and
which it computes again.

  none       keep everything (no rematerialisation);
  full       keep only each block's input: the whole block runs twice;
  dots_saveable, dots_with_no_batch_dims_saveable
             keep the outputs of matrix multiplies (all of them, or those
             without batch dimensions: weight products, not attention
             scores), recompute the rest (norms, activations, softmax);
  save_names keep only the activations the models tag with
             `checkpoint_name` (NAMES; `remat_names` narrows them);
  offload    those tagged activations go to host memory (pinned_host) and
             come back for the backward pass, where the backend has it.

The models with blocks (Transformer encoder and LM, ResNet) take `remat`
and `remat_names`; accel.train.remat picks a policy for a memory budget
(`remat="auto"` in a run's config).
"""

from typing import Sequence

import flax.linen as nn
import jax
from jax import ad_checkpoint

from accel.errors import ConfigError

POLICIES = ("none", "full", "dots_saveable",
            "dots_with_no_batch_dims_saveable", "save_names", "offload")
# What the blocks tag: the attention and MLP outputs of a Transformer block,
# the MLP's hidden activation, and a residual block's two convolutions.
NAMES = ("attention_out", "mlp_hidden", "mlp_out", "conv1_out", "conv2_out")


def check_names(names: Sequence[str]) -> tuple[str, ...]:
  """`names`, or every tagged name when empty; raises on an unknown one."""
  unknown = sorted(set(names) - set(NAMES))
  if unknown:
    raise ConfigError(f"remat_names {unknown} are not tagged by any model; "
                      f"expected some of {NAMES}.")
  return tuple(names) or NAMES


def policy(name: str, names: Sequence[str] = ()):
  """The jax.checkpoint policy of `name` (None: save nothing)."""
  names = check_names(names)
  cp = jax.checkpoint_policies
  if name == "full":
    return None
  if name == "dots_saveable":
    return cp.dots_saveable
  if name == "dots_with_no_batch_dims_saveable":
    return cp.dots_with_no_batch_dims_saveable
  if name == "save_names":
    return cp.save_only_these_names(*names)
  if name == "offload":
    return cp.save_and_offload_only_these_names(
        names_which_can_be_saved=[], names_which_can_be_offloaded=names,
        offload_src="device", offload_dst="pinned_host")
  raise ConfigError(f"Unknown remat policy {name!r}; expected one of "
                    f"{POLICIES} (or 'auto' in a run's config).")


def wrap(cls, name: str, names: Sequence[str] = (),
         static_argnums: tuple[int, ...] = ()):
  """`cls` (a block module) under policy `name`; `cls` itself for none.
  `static_argnums` index the block's call arguments, 1 the first after
  self (a Python bool such as `train` must be static)."""
  if name == "none":
    return cls
  return nn.remat(cls, policy=policy(name, names), prevent_cse=True,
                  static_argnums=static_argnums)


def tag(x, name: str):
  """Names an activation for the save_names and offload policies."""
  return ad_checkpoint.checkpoint_name(x, name)
