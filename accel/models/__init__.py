"""Flax models selected by name from `config.model`.

`make(config.model, spec)` returns a linen Module whose `__call__(inputs,
train=False)` gives float32 logits: [B, classes] for classifiers, [B, L,
vocab] for the language model. Every parameter carries logical axis names.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from accel import registry
from accel.errors import ConfigError
from accel.spec import DataSpec
from accel.models.attention import AttentionPooling
from accel.models.attention import MultiHeadAttention
from accel.models.attention import SelfAttentionAdapter
from accel.models import remat as remat_lib
from accel.models.cnn import CNN
from accel.models.kernel_rows import kernel_rows
from accel.models.mlp import MLP
from accel.models.resnet import ResNet
from accel.models.rnn import RNNClassifier
from accel.models.transformer import TransformerClassifier
from accel.models.transformer import TransformerLM

MODELS = registry.Registry("model")


def _classifier(cls):
  def build(spec: DataSpec, **options):
    if spec.task != "classification":
      raise ConfigError(f"model {cls.__name__} classifies, but data set "
                        f"{spec.name!r} is a {spec.task!r} task.")
    # vocab_size 0 means "token ids as the data set defines them".
    if (spec.input_vocab_size and "vocab_size" in _fields(cls)
        and not options.get("vocab_size")):
      options["vocab_size"] = spec.input_vocab_size
    return cls(num_classes=spec.num_classes, **options)
  # remat and remat_names are the run's (config.remat), not the model
  # section's: make() sets them.
  build.__signature__ = _signature_without(cls, "num_classes", "remat",
                                           "remat_names")
  return build


def _fields(cls):
  return {f.name for f in dataclasses.fields(cls)}


def _signature_without(cls, *names):
  import inspect  # pylint: disable=g-import-not-at-top
  sig = inspect.signature(cls)
  params = [p for n, p in sig.parameters.items()
            if n not in names + ("parent", "name")]
  first = inspect.Parameter("spec", inspect.Parameter.POSITIONAL_ONLY)
  return sig.replace(parameters=[first] + params)


MODELS.register("mlp")(_classifier(MLP))
MODELS.register("cnn")(_classifier(CNN))
MODELS.register("resnet")(_classifier(ResNet))
MODELS.register("rnn")(_classifier(RNNClassifier))
MODELS.register("transformer")(_classifier(TransformerClassifier))


@MODELS.register("transformer_lm")
def _lm(spec: DataSpec, width: int = 64, num_layers: int = 2,
        num_heads: int = 4, mlp_dim: int = 128, dropout: float = 0.0,
        dtype: Any = jnp.float32, param_dtype: Any = jnp.float32):
  if spec.task != "lm":
    raise ConfigError(f"transformer_lm needs a language-model data set; "
                      f"{spec.name!r} is a {spec.task!r} task.")
  return TransformerLM(spec.num_classes, width, num_layers, num_heads,
                       mlp_dim, dropout, dtype, param_dtype)


def make(config, spec: DataSpec, *, remat: str = "none",
         remat_names: tuple[str, ...] = ()) -> nn.Module:
  """The model named by `config.name`, built for the data set `spec`, its
  blocks under activation-checkpointing policy `remat` (accel.models.remat;
  only models with blocks take one other than "none").

  `dtype` (compute) and `param_dtype` may be given as strings ("bfloat16").
  """
  options = dict(config)
  for key in ("dtype", "param_dtype"):
    if key in options:
      options[key] = jnp.dtype(options[key])
  for key, value in options.items():
    if isinstance(value, list):
      options[key] = tuple(value)
  model = MODELS.build(options, spec)
  remat_lib.check_names(remat_names)
  if remat == "none":
    return model
  remat_lib.policy(remat, remat_names)  # names an unknown policy
  if "remat" not in _fields(type(model)):
    raise ConfigError(
        f"config.remat={remat!r}: model {config['name']!r} has no blocks to "
        "rematerialise; the Transformer, Transformer LM and ResNet do.")
  return model.clone(remat=remat, remat_names=tuple(remat_names))


def dummy_inputs(spec: DataSpec, batch_size: int = 1) -> jax.Array:
  return jnp.zeros((batch_size,) + tuple(spec.input_shape),
                   np.dtype(spec.input_dtype))
