"""Rows each kernel multiplies, read off the model's program: dense layers,
convolutions (output positions), recurrences (steps), tied weights, and the
builder's mapping for the Newton-Schulz cost rule."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from accel import models
from accel.optim import orthogonal
from accel.spec import DataSpec
from accel.train import build as build_lib
from accel.train import config as config_lib


def _rows(module, x):
  params = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)["params"]
  return models.kernel_rows(lambda p, x: module.apply({"params": p}, x),
                            params, x)


class _Tied(nn.Module):
  @nn.compact
  def __call__(self, x):
    dense = nn.Dense(8, name="shared")
    return dense(jax.nn.relu(dense(x)))


def test_dense_conv_strided_conv_and_tied_kernels():
  x = jax.ShapeDtypeStruct((4, 8), jnp.float32)
  rows = _rows(nn.Dense(3), x)
  assert rows == {"kernel": 4, "bias": 0}
  # A dense layer on [B, L, D] multiplies B L rows.
  assert _rows(nn.Dense(3), jax.ShapeDtypeStruct((4, 5, 8), jnp.float32))[
      "kernel"] == 20
  # 2-D convolution: one row per example and output position.
  img = jax.ShapeDtypeStruct((2, 10, 12, 3), jnp.float32)
  assert _rows(nn.Conv(5, (3, 3)), img)["kernel"] == 2 * 10 * 12
  assert _rows(nn.Conv(5, (3, 3), strides=2, padding="VALID"), img)[
      "kernel"] == 2 * 4 * 5
  # Used twice: both uses count.
  assert _rows(_Tied(), x)["shared"] == {"kernel": 8, "bias": 0}


def test_a_recurrent_kernel_multiplies_the_batch_at_every_step():
  x = jax.ShapeDtypeStruct((3, 7, 4), jnp.float32)  # B 3, L 7
  rows = _rows(nn.RNN(nn.GRUCell(6)), x)
  kernels = {k: v for k, v in jax.tree_util.tree_leaves_with_path(rows)
             if "kernel" in jax.tree_util.keystr(k)}
  assert kernels and set(kernels.values()) == {3 * 7}


def _spec(shape, classes, dtype="float32", task="classification"):
  return DataSpec(name="test", task=task, input_shape=shape,
                  input_dtype=dtype, num_classes=classes, num_train=100,
                  num_test=10)


def _model(name, spec, **options):
  c = config_lib.base_config()
  c.model = ml_collections.ConfigDict({"name": name, **options})
  return build_lib.make_model(c, spec)


def test_the_builder_counts_positions_tokens_and_batch_norm_models():
  image = _spec((8, 8, 1), 10)
  cnn = build_lib.kernel_rows(_model("cnn", image, channels=(4, 8)), image, 16)
  # Stride 2: the first convolution has 4 x 4 output positions, the
  # second 2 x 2.
  assert cnn["conv0/kernel"] == 16 * 4 * 4
  assert cnn["conv1/kernel"] == 16 * 2 * 2
  # A model with batch statistics traces too (eval mode).
  textures = _spec((16, 16, 3), 4)
  resnet = build_lib.kernel_rows(
      _model("resnet", textures, stage_channels=(4, 8), blocks_per_stage=1),
      textures, 2)
  assert resnet["stage0_block0/conv1/kernel"] == 2 * 16 * 16
  assert resnet["stage1_block0/conv1/kernel"] == 2 * 8 * 8
  # A token model: every hidden kernel multiplies batch x length rows, the
  # single count the builder used before (so its runs are unchanged).
  tokens = _spec((12,), 32, dtype="int32", task="lm")
  lm = _model("transformer_lm", tokens, width=16, num_layers=1, num_heads=2,
              mlp_dim=32)
  rows = build_lib.kernel_rows(lm, tokens, 3)
  hidden = {p: r for p, r in rows.items() if p.startswith("trunk/")
            and p.endswith("kernel")}
  assert hidden and set(hidden.values()) == {
      build_lib.rows_per_step(3, tokens)}


def test_convolutions_pass_the_cost_rule_that_one_count_turned_down():
  image = _spec((16, 16, 1), 10)
  model = _model("cnn", image, channels=(16, 32))
  params = nn.meta.unbox(build_lib.boxed_param_shapes(model, image))
  # conv1 (5x5x16 -> 32): 5 x 32 / 64 examples = 2.5 > 0.5 with one count;
  # 5 x 32 / (64 x 4 x 4 positions) = 0.16 with its own rows.
  one = orthogonal.orthogonalised(params, rows_per_step=64, max_cost=0.5)
  own = orthogonal.orthogonalised(
      params, rows_per_step=build_lib.kernel_rows(model, image, 64),
      max_cost=0.5)
  assert one["conv1"]["kernel"] is None
  assert own["conv1"]["kernel"] is not None
  assert own["conv0"]["kernel"] is None  # the input layer stays NAdamW


def test_the_builder_gives_the_optimizer_each_kernels_rows():
  c = config_lib.base_config()
  c.optim = ml_collections.ConfigDict({"name": "orthogonal_hybrid",
                                       "learning_rate": 1e-2})
  c.total_steps, c.batch_size = 10, 64
  image = _spec((16, 16, 1), 10)
  model = _model("cnn", image, channels=(16, 32))
  params = nn.meta.unbox(build_lib.boxed_param_shapes(model, image))
  params = jax.tree.map(lambda p: jnp.full(p.shape, 0.1, p.dtype), params)
  grads = jax.tree.map(
      lambda p: jax.random.normal(jax.random.PRNGKey(p.size), p.shape),
      params)

  def update(optimizer):
    return optimizer.tx.update(grads, optimizer.tx.init(params), params)[0]
  own = update(build_lib.make_optimizer(c, image, model))
  one = update(build_lib.make_optimizer(c, image))  # 64 rows for all
  # conv1 is orthogonalised only with its own rows: its update differs;
  # the input layer's is NAdamW's either way.
  assert not jnp.allclose(own["conv1"]["kernel"], one["conv1"]["kernel"])
  assert jnp.array_equal(own["conv0"]["kernel"], one["conv0"]["kernel"])
