"""Models: shapes and dtypes, logical axis names, adapters, causality."""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from accel import models
from accel.data import DataSpec

SIGNAL = DataSpec("signal", "classification", (40, 1), "float32", 10, 1, 1)
IMAGE = DataSpec("image", "classification", (16, 16, 3), "float32", 7, 1, 1)
TOKENS = DataSpec("tokens", "classification", (9,), "int32", 5, 1, 1,
                  input_vocab_size=20)
LM = DataSpec("lm", "lm", (9,), "int32", 20, 1, 1, input_vocab_size=20)

CASES = [
    ("mlp", SIGNAL, {}),
    ("cnn", SIGNAL, {}),
    ("cnn", IMAGE, {"attention": True, "channels": (8, 8)}),
    ("resnet", IMAGE, {"blocks_per_stage": 1, "stage_channels": (8, 16)}),
    ("resnet", IMAGE, {"blocks_per_stage": 1, "stage_channels": (8, 16),
                       "attention": True}),
    ("rnn", SIGNAL, {"cell": "gru", "hidden": 16}),
    ("rnn", TOKENS, {"cell": "lstm", "hidden": 16, "pool": "attention"}),
    ("transformer", IMAGE, {"width": 16, "patch_size": 4}),
    ("transformer", SIGNAL, {"width": 16, "patch_size": 8}),
    ("transformer", TOKENS, {"width": 16}),
    ("transformer_lm", LM, {"width": 16}),
]


def _init(name, spec, options, batch=3, **dtypes):
  model = models.make({"name": name, **options, **dtypes}, spec)
  x = models.dummy_inputs(spec, batch)
  if spec.input_dtype == "int32":
    x = jax.random.randint(jax.random.key(1), x.shape, 0, 20)
  else:
    x = jax.random.normal(jax.random.key(1), x.shape)
  # Jitted: op by op, every op of the init compiles on its own.
  variables = jax.jit(model.init)(jax.random.key(0), x)
  return model, variables, x


@pytest.mark.parametrize("name,spec,options", CASES,
                         ids=[f"{c[0]}-{c[1].name}-{i}"
                              for i, c in enumerate(CASES)])
@pytest.mark.parametrize("compute", ["float32", "bfloat16"])
def test_forward_shapes_dtypes_and_axis_names(name, spec, options, compute):
  model, variables, x = _init(name, spec, options, dtype=compute)
  logits = jax.jit(model.apply)(variables, x)
  expected = ((3, 9, 20) if spec.task == "lm" else (3, spec.num_classes))
  assert logits.shape == expected
  assert logits.dtype == jnp.float32  # logits always float32
  assert np.isfinite(np.asarray(logits)).all()
  params = nn.unbox(variables["params"])
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  boxed = jax.tree.leaves(variables["params"],
                          is_leaf=lambda v: isinstance(v, nn.Partitioned))
  assert boxed and all(isinstance(b, nn.Partitioned) for b in boxed)
  for b in boxed:
    assert len(b.names) == b.value.ndim


def test_bfloat16_compute_runs_matmuls_in_bfloat16():
  model, variables, x = _init("mlp", SIGNAL, {}, dtype="bfloat16")
  hlo = jax.jit(model.apply).lower(variables, x).as_text()
  assert "bf16" in hlo and "dot_general" in hlo


@pytest.mark.parametrize("name,spec,options", [
    ("cnn", SIGNAL, {"channels": (8, 8)}),
    ("resnet", IMAGE, {"blocks_per_stage": 1, "stage_channels": (8, 16)}),
])
def test_attention_adapter_starts_as_the_identity(name, spec, options):
  base, base_vars, x = _init(name, spec, options)
  adapted, adapted_vars, _ = _init(name, spec, {**options, "attention": True})
  base_params = nn.unbox(base_vars["params"])
  params = flax.core.unfreeze(nn.unbox(adapted_vars["params"]))
  # Give the adapted model the base model's weights for the shared layers.
  for key, value in base_params.items():
    params[key] = value
  assert any("adapter" in k for k in params)
  np.testing.assert_allclose(jax.jit(adapted.apply)({"params": params}, x),
                             jax.jit(base.apply)({"params": base_params}, x),
                             rtol=1e-5, atol=1e-5)


def test_adapter_mixes_positions_once_trained():
  adapter = models.SelfAttentionAdapter(num_heads=2)
  x = jax.random.normal(jax.random.key(0), (2, 6, 8))
  params = nn.unbox(jax.jit(adapter.init)(jax.random.key(1), x)["params"])
  params = jax.tree.map(lambda p: p + 0.1, params)  # out projection non-zero
  apply = jax.jit(adapter.apply)
  y = apply({"params": params}, x)
  x2 = x.at[:, 0].set(jax.random.normal(jax.random.key(2), (2, 8)))
  y2 = apply({"params": params}, x2)
  assert not np.allclose(y[:, 3], y2[:, 3])  # other positions see it


def test_attention_pooling_weights_are_a_distribution_over_time():
  model, variables, x = _init("rnn", SIGNAL, {"hidden": 8,
                                              "pool": "attention"})
  _, inter = model.apply(variables, x, mutable=["intermediates"])
  # The pooling's attention weights (the head's input features are sown too).
  (weights,) = [v for path, v in jax.tree_util.tree_leaves_with_path(inter)
                if "attention_weights" in jax.tree_util.keystr(path)]
  assert weights.shape == (3, 2, 1, 40)  # [B, heads, query, time]
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


def test_language_model_is_causal():
  model, variables, x = _init("transformer_lm", LM, {"width": 16})
  logits = model.apply(variables, x)
  changed = x.at[:, 5].set((x[:, 5] + 1) % 20)
  logits2 = model.apply(variables, changed)
  np.testing.assert_allclose(logits[:, :5], logits2[:, :5], atol=1e-6)
  assert not np.allclose(logits[:, 5:], logits2[:, 5:])


def test_model_errors_name_the_bad_value():
  with pytest.raises(ValueError, match=r"Unknown model 'resnet50'.*Known"):
    models.make({"name": "resnet50"}, IMAGE)
  with pytest.raises(ValueError, match=r"Unknown option 'chanels'.*channels"):
    models.make({"name": "cnn", "chanels": (4,)}, IMAGE)
  with pytest.raises(ValueError, match="transformer_lm needs a language"):
    models.make({"name": "transformer_lm"}, IMAGE)
  with pytest.raises(ValueError, match="classifies"):
    models.make({"name": "mlp"}, LM)
