"""Scale on the simulated 8-device CPU mesh: meshes, shardings, equivalence
with one device, bf16 policy, restore onto another mesh.

Every step is blocked on before the next (XLA:CPU all-reduce rendezvous can
hang with several sharded programs in flight, jax issue 25861).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from accel import optim
from accel import parallel
from accel import train
from accel.optim import gt_network
from accel.train import config as config_lib
from accel.train import build as build_lib

P = jax.sharding.PartitionSpec
ONE = (("data", 1), ("fsdp", 1), ("tensor", 1))
DATA8 = (("data", 8), ("fsdp", 1), ("tensor", 1))
FSDP4 = (("data", 2), ("fsdp", 4), ("tensor", 1))
TENSOR2 = (("data", 2), ("fsdp", 2), ("tensor", 2))


def mlp_config(optimizer="adamw", **optim_options):
  c = config_lib.base_config()
  c.data = config_lib.data_section("synthetic", num_train=512, num_test=64,
                                   dim=8)
  c.model = config_lib.model_section("mlp", hidden=(16, 16))
  c.optim = config_lib.optim_section(optimizer, learning_rate=1e-2,
                                     **optim_options)
  c.total_steps, c.batch_size, c.eval_batch_size = 8, 32, 32
  c.log_every, c.eval_every, c.checkpoint_every = 4, 0, 4
  c.progress_bar = False
  return c


def lm_config(optimizer="adamw"):
  c = config_lib.base_config()
  # Vocabulary 1 + 15 + 16 = 32 tokens: divisible by every tensor size.
  c.data = config_lib.data_section("sequence", task="lm", num_pairs=4,
                                   num_keys=15, num_train=256, num_test=32)
  c.model = config_lib.model_section("transformer_lm", width=16,
                                     num_layers=1, num_heads=2, mlp_dim=32)
  c.optim = config_lib.optim_section(optimizer, learning_rate=1e-2)
  c.total_steps, c.batch_size, c.eval_batch_size = 8, 16, 16
  c.log_every, c.eval_every, c.checkpoint_every = 4, 0, 4
  c.progress_bar = False
  return c


def two_steps(config, mesh_axes):
  """(steps, state, [loss, loss]) after two blocked steps on `mesh_axes`."""
  parts = build_lib.build(config, mesh=parallel.make_mesh(mesh_axes))
  steps = parts.steps
  state = steps.init()
  it = parts.source.train_iterator(build_lib.candidates_per_step(config),
                                   config.seed)
  losses = []
  for _ in range(2):
    state, metrics = steps.train(state, steps.train_batch(next(it)))
    losses.append(float(jax.block_until_ready(metrics)["loss"]))
  return steps, state, losses


def host(tree):
  return jax.tree.map(np.asarray, jax.device_get(tree))


def assert_same_training(config, meshes, rtol=2e-5, atol=2e-6,
                         reference=None):
  """`config` on each mesh trains as `reference` (default: `config`) does
  on one device."""
  _, ref_state, ref_losses = two_steps(reference or config, ONE)
  for mesh_axes in meshes:
    steps, state, losses = two_steps(config, mesh_axes)
    np.testing.assert_allclose(losses, ref_losses, rtol=rtol, atol=atol)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(
        a, b, rtol=rtol, atol=atol), host(state.params),
                 host(ref_state.params))
    # Shardings are those the rules gave, after the donated steps too, and
    # the second step reused the first step's program.
    jax.tree.map(lambda x, s: _same_sharding(x.sharding, s, x.ndim),
                 state, steps.shardings)
    assert steps.train._cache_size() == 1  # pylint: disable=protected-access


def _same_sharding(actual, expected, ndim):
  assert actual.is_equivalent_to(expected, ndim), (actual, expected)


# --- Meshes and rules --------------------------------------------------------

def test_mesh_fills_the_free_axis_and_names_bad_meshes():
  assert parallel.mesh.mesh_shape(parallel.DEFAULT_MESH, 8) == {
      "data": 8, "fsdp": 1, "tensor": 1}
  assert parallel.mesh.mesh_shape(
      (("data", -1), ("fsdp", 2), ("tensor", 2)), 8)["data"] == 2
  mesh = parallel.make_mesh(FSDP4)
  assert dict(mesh.shape) == {"data": 2, "fsdp": 4, "tensor": 1}
  with pytest.warns(UserWarning, match=r"uses 1 of the 8 devices; devices "
                    r"1-7 stay idle\. Give one axis -1"):
    assert parallel.make_mesh(ONE).size == 1  # the first of the 8 devices
  with pytest.warns(UserWarning, match="uses 3 of the 8 devices; devices 3-7"):
    parallel.make_mesh((("data", 3), ("fsdp", 1), ("tensor", 1)))
  with pytest.raises(ValueError, match="each of the axes"):
    parallel.mesh.mesh_shape((("data", -1), ("model", 1), ("tensor", 1)), 8)
  with pytest.raises(ValueError, match="only one mesh axis may be -1"):
    parallel.mesh.mesh_shape((("data", -1), ("fsdp", -1), ("tensor", 1)), 8)
  with pytest.raises(ValueError, match="does not divide 8"):
    parallel.mesh.mesh_shape((("data", -1), ("fsdp", 3), ("tensor", 1)), 8)
  with pytest.raises(ValueError, match="needs 16 devices; 8 are available"):
    parallel.mesh.mesh_shape((("data", 4), ("fsdp", 4), ("tensor", 1)), 8)
  with pytest.raises(ValueError, match="mesh axis 'model'"):
    parallel.mesh.check_axis_rules((("embed", "model"),))


def test_config_errors_name_the_bad_value():
  c = mlp_config()
  c.batch_size = 12
  with pytest.raises(ValueError, match="config.batch_size 12 is not "
                     "divisible by the 8 batch shards"):
    build_lib.build(c, mesh=parallel.make_mesh(FSDP4))
  c = mlp_config()
  c.precision.compute = "float16"
  with pytest.raises(ValueError, match="precision.compute must be one of"):
    config_lib.validate(c)
  c = mlp_config()
  c.mesh = (("data", -1), ("fsdp", -1), ("tensor", 1))
  with pytest.raises(ValueError, match="only one mesh axis may be -1"):
    config_lib.validate(c)
  c = mlp_config()
  c.model.dtype = "bfloat16"
  with pytest.raises(ValueError, match="contradicts config.precision"):
    parallel.policy(c.precision).model_config(c.model)
  with pytest.raises(ValueError, match="'sgd' cannot keep its first moment"):
    optim.make(config_lib.optim_section("sgd"), 10, mu_dtype=jnp.bfloat16)


def test_shardings_follow_the_logical_rules():
  """Transformer LM on (data 2, fsdp 2, tensor 2): parameters by their
  logical names, optimizer moments like their parameters, small state
  replicated."""
  c = lm_config("meta_attention_adamw")
  steps = build_lib.build(c, mesh=parallel.make_mesh(TENSOR2)).steps
  params = steps.shardings.params
  block = params["trunk"]["block0"]
  assert params["embed"]["embedding"].spec == P("tensor", "fsdp")  # vocab, embed
  assert block["mlp_in"]["kernel"].spec == P("fsdp", "tensor")     # embed, mlp
  assert block["mlp_out"]["kernel"].spec == P("tensor", "fsdp")    # mlp, embed
  assert block["attention"]["query"]["kernel"].spec == P(
      "fsdp", "tensor", None)                                       # heads, kv
  assert params["lm_head"]["kernel"].spec == P("fsdp", "tensor")
  adam, _ = steps.shardings.opt_state.adam
  meta = steps.shardings.opt_state.meta
  assert adam.mu == params and adam.nu == params
  assert meta.trace == params  # the hypergradient trace is parameter-shaped
  for small in (adam.count, meta.trace_sq_T, meta.multiplier_T,
                meta.level):
    assert small.is_fully_replicated


def test_indivisible_dimensions_stay_whole_and_the_replication_check():
  c = mlp_config()
  c.model = config_lib.model_section("mlp", hidden=(6, 10))  # not /4
  c.max_replicated_share = 0.1
  mesh = parallel.make_mesh(FSDP4)
  with pytest.raises(ValueError, match=r"79% of the parameter bytes would "
                     r"be replicated on mesh .* Largest replicated: "
                     r"classifier/head/kernel \(400 B\), dense1/kernel"):
    build_lib.build(c, mesh=mesh)
  c.max_replicated_share = 1.0
  steps = build_lib.build(c, mesh=mesh).steps
  # dense0 is 8 x 6: embed (8) splits over fsdp=4; dense1 6 x 10 does not.
  assert steps.shardings.params["dense0"]["kernel"].spec == P("fsdp", None)
  assert steps.shardings.params["dense1"]["kernel"].is_fully_replicated
  assert 0.1 < steps.replicated_share < 1.0


# --- The same training on every mesh ----------------------------------------

def _required_options(name, tmp_path):
  """Options an optimizer cannot do without: the cost rule's rows (many,
  so Newton-Schulz runs on the 16 x 16 matrix) and, for the gradient
  transformer, weights with a random head (so its network acts hard)."""
  if name == "orthogonal_hybrid":
    return {"rows_per_step": 4096}
  if name != "gradient_transformer":
    return {}
  weights = gt_network.init_weights(
      gt_network.Architecture(history=4, width=8))
  weights["head"]["kernel"] = jax.random.normal(
      jax.random.PRNGKey(3), weights["head"]["kernel"].shape)
  path = str(tmp_path / "direction.msgpack")
  gt_network.save_weights(
      path, weights, gt_network.infer_architecture(weights))
  return {"rows_per_step": 4096, "weights": path}


@pytest.mark.parametrize("name", optim.OPTIMIZERS.names)
def test_mlp_step_matches_one_device_with_every_optimizer(name, tmp_path):
  meshes = [FSDP4]
  if name in ("adamw", "gradient_transformer", "meta_attention_adamw"):
    meshes.append(DATA8)
  assert_same_training(mlp_config(name, **_required_options(name, tmp_path)),
                       meshes)


def test_init_takes_the_seed_as_an_argument():
  """One init program serves every seed (a benchmark's seeds compile it
  once), and it gives the state that init_state gives for that seed, laid
  out by the state shardings."""
  mesh = parallel.make_mesh(FSDP4)
  states, programs = [], []
  for seed in (0, 7):
    c = mlp_config()
    c.seed = seed
    parts = build_lib.build(c, mesh=mesh)
    state = parts.steps.init()
    assert jax.tree.map(lambda x: x.sharding, state) == parts.steps.shardings
    programs.append(parts.steps.init.func.lower(
        *parts.steps.init.args).as_text())
    expected = train.init_state(parts.model, parts.optimizer,
                                parts.source.spec, seed)
    jax.tree.map(np.testing.assert_array_equal, host(state), host(expected))
    states.append(host(state.params))
  assert programs[0] == programs[1]
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, *states)))
  c = mlp_config()
  c.seed = -1
  with pytest.raises(ValueError, match=r"config.seed must be in \[0, "
                     r"2\*\*31\), got -1"):
    build_lib.build(c, mesh=mesh)


@pytest.mark.parametrize("name,meshes", [
    ("adamw", [FSDP4, DATA8, TENSOR2]),
    ("gradient_transformer", [TENSOR2]),  # the most sharded layout
    ("meta_attention_adamw", [TENSOR2])])
def test_transformer_lm_step_matches_one_device(name, meshes):
  assert_same_training(lm_config(name), meshes)


def _selecting(config_fn, groups, **options):
  c = config_fn()
  c.selection = config_lib.selection_section(
      scorer="loss", method=options.pop("method", "topk"), ratio=2,
      groups=groups, **options)
  return c


@pytest.mark.parametrize("config_fn", [mlp_config, lm_config])
def test_batch_selection_on_a_mesh_matches_one_device(config_fn):
  # Global selection (groups=1) is the one-device selection on any mesh.
  assert_same_training(_selecting(config_fn, 1), [FSDP4])
  # Per-shard selection (the default) on 8 batch shards is the one-device
  # selection in 8 groups.
  assert_same_training(_selecting(config_fn, 0), [DATA8],
                       reference=_selecting(config_fn, 8))


def test_per_shard_selection_needs_no_communication():
  """The selected batch of a data-parallel mesh is formed where its
  candidates are: the compiled scoring, selection and gather hold no
  collective, and the batch comes out split over the devices."""
  c = _selecting(mlp_config, 0, method="sample", class_quota=1)
  parts = build_lib.build(c, mesh=parallel.make_mesh(DATA8))
  steps = parts.steps
  it = parts.source.train_iterator(build_lib.candidates_per_step(c), 0)
  candidates = steps.train_batch(next(it))
  params = steps.init().params
  select = jax.jit(lambda p, b: parts.selector(
      p, b, jax.random.PRNGKey(0), jnp.int32(10))[0])
  hlo = select.lower(params, candidates).compile().as_text()
  for op in ("all-gather", "all-reduce", "all-to-all", "collective-permute"):
    assert op not in hlo, op
  batch = select(params, candidates)
  assert batch["inputs"].shape[0] == c.batch_size
  assert batch["inputs"].sharding.is_equivalent_to(
      candidates["inputs"].sharding, 2)
  # Each device's rows are some of its own candidates.
  for shard, cand in zip(batch["inputs"].addressable_shards,
                         candidates["inputs"].addressable_shards):
    rows = {tuple(r) for r in np.asarray(cand.data)}
    assert all(tuple(r) in rows for r in np.asarray(shard.data))


# --- bfloat16 ---------------------------------------------------------------

def _dot_types(hlo: str) -> list[tuple[str, str]]:
  """(lhs type, rhs type) of every dot_general/convolution in StableHLO."""
  out = []
  for line in hlo.splitlines():
    if "stablehlo.dot_general" in line or "stablehlo.convolution" in line:
      sig = re.search(r":\s*\((tensor<[^>]*>),\s*(tensor<[^>]*>)\)", line)
      if sig:
        out.append(sig.groups())
  return out


@pytest.mark.parametrize("config_fn", [mlp_config, lm_config])
def test_bf16_policy_multiplies_in_bf16_and_keeps_float32_weights(config_fn):
  c = config_fn()
  c.precision.compute = "bfloat16"
  c.precision.first_moment = "bfloat16"
  parts = build_lib.build(c, mesh=parallel.make_mesh(FSDP4))
  steps = parts.steps
  state = steps.init()
  batch = steps.train_batch(next(parts.source.train_iterator(
      c.batch_size, c.seed)))
  hlo = steps.train.lower(state, batch).as_text()
  dots = _dot_types(hlo)
  bf16 = [d for d in dots if d[0].endswith("bf16>") and d[1].endswith("bf16>")]
  f32 = [d for d in dots if d not in bf16]
  # Forward, and both backward products of every weight matrix: 3 per
  # kernel. The only float32 products left are the loss's class sums.
  num_kernels = sum(1 for p in jax.tree.leaves(state.params) if p.ndim >= 2
                    and "embedding" not in str(p.shape))
  assert len(bf16) >= 2 * num_kernels, (len(bf16), num_kernels, f32)
  for lhs, rhs in f32:
    assert "f32" in lhs and "f32" in rhs
  # The logits come out float32 (accumulated in float32).
  logits = parts.model.apply({"params": state.params}, batch["inputs"])
  assert logits.dtype == jnp.float32
  state, metrics = steps.train(state, batch)
  jax.block_until_ready(metrics)
  for p in jax.tree.leaves(state.params):
    assert p.dtype == jnp.float32
  adam = state.opt_state[0]  # adamw: (scale_by_adam, decay, lr)
  assert {m.dtype for m in jax.tree.leaves(adam.mu)} == {jnp.dtype("bfloat16")}
  assert {v.dtype for v in jax.tree.leaves(adam.nu)} == {jnp.dtype("float32")}
  assert np.isfinite(float(metrics["loss"]))


@pytest.mark.slow
def test_bf16_training_reaches_the_float32_accuracy_band(tmp_path):
  """The MNIST-1D MLP debug config (more steps) in bf16 and in float32."""
  def final(compute):
    c = config_lib.load_file("configs/mnist1d_mlp.py:debug")
    c.total_steps, c.eval_max_examples, c.eval_every = 150, 1024, 0
    c.checkpoint_every, c.progress_bar = 0, False
    c.precision.compute = compute
    c.mesh = ONE
    return train.run(c, str(tmp_path / compute))["accuracy"]
  fp32, bf16 = final("float32"), final("bfloat16")
  assert fp32 > 0.3  # it learned something: the band is meaningful
  assert abs(bf16 - fp32) < 0.05, (fp32, bf16)


# --- Checkpoints across meshes -----------------------------------------------

@pytest.mark.slow
def test_checkpoint_from_one_mesh_resumes_on_another(tmp_path):
  """Save on (data 2, fsdp 4); resume on (data 8) and on one device; the
  result matches a run that never stopped."""
  def config(mesh, total):
    c = mlp_config("meta_attention_adamw")
    c.mesh, c.total_steps = mesh, total
    return c
  straight = train.run(config(FSDP4, 8), str(tmp_path / "straight"))
  split = str(tmp_path / "split")
  train.run(config(FSDP4, 8), split, stop_after=4)
  on8 = train.run(config(DATA8, 8), split, stop_after=6)
  assert on8["step"] == 6
  for leaf in jax.tree.leaves(on8["state"].params):
    assert dict(leaf.sharding.mesh.shape) == {"data": 8, "fsdp": 1,
                                              "tensor": 1}
  on1 = train.run(config(ONE, 8), split)
  assert on1["step"] == 8
  assert {d for p in jax.tree.leaves(on1["state"].params)
          for d in p.devices()} == {jax.devices()[0]}
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, rtol=1e-4, atol=1e-5), host(on1["state"].params),
               host(straight["state"].params))
  assert on1["accuracy"] == pytest.approx(straight["accuracy"], abs=1e-6)
