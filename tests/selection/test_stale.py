"""The stale-loss table: its bookkeeping against a reference loop, the
scores it gives, training with it, resuming with it, and its sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from accel import train
from accel.selection import selector
from accel.selection import stale
from accel.train import build as build_lib
from accel.train import config as config_lib


def _reference_scores(loss, seen, ids, step, staleness, groups):
  """A plain loop over the candidates (the module doc's rule)."""
  out = np.zeros(len(ids), np.float32)
  size = len(ids) // groups
  for g in range(groups):
    block = ids[g * size:(g + 1) * size]
    ok = [seen[i] >= 0 and step - seen[i] <= staleness for i in block]
    known = [loss[i] for i, o in zip(block, ok) if o]
    floor = max(known) if known else 0.0
    for j, (i, o) in enumerate(zip(block, ok)):
      out[g * size + j] = loss[i] if o else floor
  return out


@pytest.mark.parametrize("groups", [1, 2])
def test_table_bookkeeping_matches_a_reference_loop(groups):
  rng = np.random.default_rng(0)
  num, staleness = 40, 5
  table = stale.init_table(num)
  loss, seen = np.zeros(num, np.float32), np.full(num, -1)
  record = jax.jit(stale.record)
  scores = jax.jit(stale.scores, static_argnums=(3, 4))
  for step in range(20):
    ids = rng.choice(num, 8, replace=False).astype(np.int32)
    got = scores(table, jnp.asarray(ids), jnp.int32(step), staleness, groups)
    np.testing.assert_allclose(
        got, _reference_scores(loss, seen, ids, step, staleness, groups))
    trained = ids[:4]
    losses = rng.uniform(0, 3, 4).astype(np.float32)
    table = record(table, jnp.asarray(trained), jnp.asarray(losses),
                   jnp.int32(step))
    loss[trained], seen[trained] = losses, step
    np.testing.assert_array_equal(table.loss_N, loss)
    np.testing.assert_array_equal(table.step_N, seen)
  assert table.loss_N.dtype == jnp.float32 and table.step_N.dtype == jnp.int32


def test_unknown_and_stale_candidates_get_the_groups_top_score():
  table = stale.record(stale.init_table(6), jnp.asarray([0, 1, 2]),
                       jnp.asarray([0.5, 2.0, 1.0]), jnp.int32(10))
  ids = jnp.asarray([0, 1, 2, 3])
  np.testing.assert_allclose(stale.scores(table, ids, jnp.int32(12), 5),
                             [0.5, 2.0, 1.0, 2.0])
  # Past the staleness limit nothing is trusted: all get the floor 0.
  np.testing.assert_allclose(stale.scores(table, ids, jnp.int32(16), 5),
                             [0.0, 0.0, 0.0, 0.0])
  # For a filter that keeps low scores, the unknown one gets the lowest.
  np.testing.assert_allclose(
      stale.scores(table, ids, jnp.int32(12), 5, untrusted="lowest"),
      [0.5, 2.0, 1.0, 0.5])
  with pytest.raises(ValueError, match="untrusted must be 'highest' or "
                     "'lowest', got 'max'"):
    stale.scores(table, ids, jnp.int32(12), 5, untrusted="max")


def test_a_low_score_filter_keeps_the_unknown_candidates():
  """prefer='low' top-k drops the highest stale losses (suspected corrupted
  labels) and keeps candidates it has not measured yet."""
  table = stale.record(stale.init_table(8), jnp.arange(6),
                       jnp.asarray([0.1, 5.0, 0.2, 4.0, 0.3, 0.4]),
                       jnp.int32(0))
  candidates = {"example_id": jnp.arange(8), "label": jnp.zeros(8, jnp.int32),
                "inputs": jnp.arange(8.0)[:, None]}
  sel = selector.Selector(None, 6, method="topk", staleness_steps=100,
                          prefer="low")
  batch, _ = sel({}, candidates, jax.random.PRNGKey(0), jnp.int32(5), table)
  assert sorted(np.asarray(batch["example_id"]).tolist()) == [0, 2, 4, 5,
                                                              6, 7]


def _six_measured(losses):
  """A table where ids 0-5 carry `losses` (6 and 7 never measured), and
  the 8 ids as candidates in a shuffled stream order."""
  table = stale.record(stale.init_table(8), jnp.arange(6),
                       jnp.asarray(losses), jnp.int32(0))
  candidates = {"example_id": jnp.asarray([1, 0, 7, 2, 3, 4, 6, 5]),
                "label": jnp.zeros(8, jnp.int32),
                "inputs": jnp.arange(8.0)[:, None]}
  return table, candidates


def test_dropping_above_the_chance_loss_keeps_the_rest_in_stream_order():
  table, candidates = _six_measured([0.1, 5.0, 0.2, 4.0, 0.3, 0.4])
  sel = selector.Selector(None, 5, method="topk", staleness_steps=100,
                          prefer="low", drop_above=2.3)
  batch, _ = sel({}, candidates, jax.random.PRNGKey(0), jnp.int32(5), table)
  # Ids 1 and 3 lie above the line; of the rest, the first five in stream
  # order (the unmeasured 7 and 6 included), not the five lowest losses.
  assert np.asarray(batch["example_id"]).tolist() == [0, 7, 2, 4, 6]


def test_the_band_selects_the_highest_losses_below_the_line():
  """prefer='high' with drop_above: top-k takes the highest losses at or
  below the line, then (only when too few are) those above it; an
  unmeasured candidate gets the highest score in the band, not one above
  the line, so it is still drawn."""
  table, candidates = _six_measured([0.1, 5.0, 0.2, 4.0, 0.3, 2.0])
  sel = selector.Selector(None, 3, method="topk", staleness_steps=100,
                          drop_above=2.3)
  batch, _ = sel({}, candidates, jax.random.PRNGKey(0), jnp.int32(5), table)
  # In the band: 5 (2.0) and the unmeasured 7 and 6 (given 2.0 too); the
  # highest losses overall, 1 (5.0) and 3 (4.0), are left out.
  assert sorted(np.asarray(batch["example_id"]).tolist()) == [5, 6, 7]
  # Asking for more than the band holds takes the ones above it last.
  sel = selector.Selector(None, 7, method="topk", staleness_steps=100,
                          drop_above=2.3)
  batch, _ = sel({}, candidates, jax.random.PRNGKey(0), jnp.int32(5), table)
  chosen = set(np.asarray(batch["example_id"]).tolist())
  assert {0, 2, 4, 5, 6, 7} <= chosen and len(chosen & {1, 3}) == 1


def _stale_config(**selection):
  c = config_lib.base_config()
  c.data = config_lib.data_section("synthetic", num_train=256, num_test=64,
                                   dim=8, label_noise=0.2)
  c.model = config_lib.model_section("mlp", hidden=(16,))
  c.optim = config_lib.optim_section("adamw", learning_rate=1e-2)
  c.total_steps, c.batch_size, c.eval_batch_size = 24, 16, 32
  c.log_every, c.eval_every, c.checkpoint_every = 4, 0, 12
  c.progress_bar = False
  c.selection = config_lib.selection_section(
      scorer="stale_loss", method="rank", ratio=4,
      **{"controller": "off", **selection})
  return c


def test_training_fills_the_table_with_the_trained_examples_losses(tmp_path):
  c = _stale_config()
  parts = build_lib.build(c)
  steps, source = parts.steps, parts.source
  state = steps.init()
  assert state.selection.loss_N.shape == (source.spec.num_train,)
  it = source.train_iterator(64, c.seed)
  for step in range(3):
    candidates = steps.train_batch(next(it))
    before = jax.device_get(state.params)  # the step donates the state
    state, _ = steps.train(state, candidates)
  # The last step: the examples it trained on now carry step 2, and the
  # loss the step computed for them at the parameters before it.
  table = jax.device_get(state.selection)
  trained = np.flatnonzero(table.step_N == 2)
  assert len(trained) == 16
  batch = source.fetch("train", trained)
  logits = parts.model.apply({"params": before}, batch["inputs"],
                             train=False)
  # Dropout is off in this model, so train and eval forward agree.
  want = -jax.nn.log_softmax(logits)[np.arange(16), batch["label"]]
  np.testing.assert_allclose(table.loss_N[trained], want, rtol=1e-5,
                             atol=1e-6)
  assert set(np.flatnonzero(table.step_N >= 0)) >= set(trained)


def test_resume_with_the_table_is_exact(tmp_path):
  straight = train.run(_stale_config(), str(tmp_path / "straight"))
  split = str(tmp_path / "split")
  train.run(_stale_config(), split, stop_after=12)
  resumed = train.run(_stale_config(), split)
  for a, b in zip(jax.tree.leaves(jax.device_get(straight["state"])),
                  jax.tree.leaves(jax.device_get(resumed["state"]))):
    np.testing.assert_array_equal(a, b)
  assert (jax.device_get(resumed["state"].selection.step_N) >= 12).any()


def test_the_table_is_split_over_the_batch_axes():
  c = _stale_config()
  c.mesh = (("data", 8), ("fsdp", 1), ("tensor", 1))
  c.data.num_train = 1040  # the generator keeps 1,040 (8 x 130) here
  parts = build_lib.build(c)
  n = parts.source.spec.num_train
  assert n % 8 == 0
  sharding = parts.steps.init().selection.loss_N.sharding
  assert not sharding.is_fully_replicated
  assert sharding.shard_shape((n,)) == (n // 8,)


def test_stale_selection_errors_are_named():
  c = _stale_config(staleness_steps=-1)
  with pytest.raises(ValueError, match="staleness_steps must be >= 0"):
    build_lib.build(c)
  c = _stale_config(prefer="middle")
  with pytest.raises(ValueError, match="prefer is 'high'"):
    build_lib.build(c)
  c = _stale_config(drop_above_chance=1.0, prefer="low")  # with rank
  with pytest.raises(ValueError, match="drop_above_chance .* needs scorer "
                     "'loss' or 'stale_loss', prefer='low' with method "
                     "'topk' or prefer='high' with 'topk' or 'rank'"
                     ".*got drop_above_chance=1.0, scorer 'stale_loss', "
                     "prefer 'low', method 'rank'"):
    build_lib.build(c)


@pytest.mark.parametrize("groups", [1, 2])
def test_fewer_candidates_select_from_each_groups_first_ones(groups):
  """with_ratio(r): the same selection as the full selector given only
  each group's first r * k / groups candidates (the reference), and the
  ratio in its metrics."""
  rng = np.random.default_rng(0)
  table = stale.record(stale.init_table(16), jnp.arange(16),
                       jnp.asarray(rng.uniform(0, 3, 16), jnp.float32),
                       jnp.int32(0))
  ids = jnp.asarray(rng.permutation(16))
  candidates = {"example_id": ids, "label": jnp.zeros(16, jnp.int32),
                "inputs": jnp.arange(16.0)[:, None]}
  full = selector.Selector(None, 4, method="topk", staleness_steps=100,
                           groups=groups)
  cheaper = full.with_ratio(2.0)
  key = jax.random.PRNGKey(0)
  batch, metrics = cheaper({}, candidates, key, jnp.int32(5), table)
  def head(v):  # each group's first 8 / groups rows
    return v.reshape((groups, -1) + v.shape[1:])[:, :8 // groups].reshape(
        (-1,) + v.shape[1:])
  ref, _ = full({}, {k: head(v) for k, v in candidates.items()}, key,
                jnp.int32(5), table)
  np.testing.assert_array_equal(batch["example_id"], ref["example_id"])
  assert float(metrics["selection/ratio"]) == 2.0
  assert float(full({}, candidates, key, jnp.int32(5), table)[1][
      "selection/ratio"]) == 4.0
  # The highest stale losses among the first candidates, not among all.
  loss = np.asarray(table.loss_N)
  firsts = np.asarray(head(ids)).reshape(groups, -1)
  want = np.concatenate([g[np.argsort(-loss[g])][:4 // groups]
                         for g in firsts])
  assert sorted(np.asarray(batch["example_id"]).tolist()) == sorted(
      want.tolist())
  with pytest.raises(ValueError, match=r"candidate ratio must be >= 1 .* "
                     r"divisible by the 2 selection group\(s\) at batch size "
                     r"4; got 1.25"):
    selector.Selector(None, 4, method="topk", staleness_steps=100,
                      groups=2).with_ratio(1.25)
