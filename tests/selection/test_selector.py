"""Selection inside training runs: what it picks on noisy data, what it
logs, and the config errors it names."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from accel import train
from accel.selection import scorers
from accel.selection import selector as selector_lib
from accel.selection import tables
from accel import data
from accel import models
from accel import selection
from accel.train import config as config_lib
from accel.train import irreducible

@pytest.mark.slow
def test_training_with_selection_rho_loss_avoids_noisy_labels(tmp_path,
                                                              noisy_config):
  """RHO-LOSS picks fewer corrupted labels than the loss scorer, which
  seeks them out; metrics reach TensorBoard."""
  table_path = str(tmp_path / "il.npz")
  c = noisy_config()
  tables.save_table(table_path, irreducible.make_table(
      c, holdout_fraction=0.5, steps=150, batch_size=32), c.data)
  shares = {}
  for scorer in ("loss", "reducible_loss"):
    workdir = str(tmp_path / scorer)
    train.run(noisy_config(scorer=scorer, method="topk", ratio=4,
                            warmup_steps=10, class_rebalance=1.0,
                            irreducible_table=table_path), workdir)
    from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
    acc = event_accumulator.EventAccumulator(os.path.join(workdir,
                                                          "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/selection/noisy_share_selected",
            "train/selection/class_share/0",
            "train/selection/score_p90"} <= tags
    assert "train/selection/scores" in acc.Tags()["histograms"]
    share = acc.Scalars("train/selection/scoring_share")
    assert [e.step for e in share] == [20, 40, 60]  # after the warm-up
    assert all(0 < e.value < 1 for e in share)
    # The last window: after warm-up.
    shares[scorer] = [e.value for e in acc.Scalars(
        "train/selection/noisy_share_selected")][-1]
    candidates = [e.value for e in acc.Scalars(
        "train/selection/noisy_share_candidates")][-1]
  assert shares["loss"] > candidates  # high loss = mostly corrupted labels
  assert shares["reducible_loss"] < shares["loss"] - 0.1


def test_selection_config_errors_are_named(tmp_path, noisy_config):
  with pytest.raises(ValueError, match="Unknown selection option 'raito'"):
    config_lib.selection_section(raito=4)
  c = noisy_config(scorer="reducible_loss")
  with pytest.raises(ValueError, match="needs config.selection."
                     "irreducible_table"):
    train.run(c, str(tmp_path / "a"))
  c = noisy_config(scorer="loss", ratio=0.5)
  with pytest.raises(ValueError, match="ratio is candidates per selected "
                     "example, >= 1; got 0.5"):
    train.run(c, str(tmp_path / "b"))
  c = noisy_config(scorer="loss", controller_probe="validation")
  with pytest.raises(ValueError, match=r"controller_probe is one of "
                     r"\('train', 'heldout'\); got 'validation'"):
    train.run(c, str(tmp_path / "d"))
  c = noisy_config(scorer="loss", controller_probe_trim=1.0)
  with pytest.raises(ValueError, match=r"controller_probe_trim .* must be "
                     r"in \[0, 1\); got 1.0"):
    train.run(c, str(tmp_path / "c"))
  c = noisy_config(scorer="loss", controller_z=-0.5)
  with pytest.raises(ValueError, match=r"controller_z .* must be >= 0; got "
                     r"-0.5"):
    train.run(c, str(tmp_path / "z"))
  for bad, controller in [((4.0,), "auto"), ((1.5, 2.0), "auto"),
                          ((2.0,), "off")]:
    c = noisy_config(scorer="loss", ratio=4, controller_ratios=bad,
                     controller=controller)
    with pytest.raises(ValueError, match=r"controller_ratios are the cheaper "
                       r"candidate ratios .* each in \[1, ratio=4\), "
                       r"decreasing, with the controller on; got "):
      train.run(c, str(tmp_path / "ratios"))
  c = noisy_config(scorer="loss", controller_probe_clip=-1.0)
  with pytest.raises(ValueError, match=r"controller_probe_clip \(0: off\) "
                     r"caps .* got -1.0 on a classification task"):
    train.run(c, str(tmp_path / "e"))


@pytest.mark.slow
def test_attention_scorer_trains_and_names_bad_settings(tmp_path,
                                                       noisy_config):
  c = noisy_config(scorer="attention", method="topk", ratio=2,
                    reference_per_class=4)
  c.total_steps = 4
  assert train.run(c, str(tmp_path / "ok"))["step"] == 4
  c = noisy_config(scorer="attention", prototype_temperature=0.0)
  with pytest.raises(ValueError, match="prototype_temperature must be > 0"):
    train.run(c, str(tmp_path / "t"))
  c = noisy_config(scorer="attention", reference_per_class=0)
  with pytest.raises(ValueError, match="reference_per_class must be >= 1"):
    train.run(c, str(tmp_path / "r"))
  c.data = config_lib.data_section("sequence", task="lm", num_train=64,
                                   num_test=16)
  c.model = config_lib.model_section("transformer_lm", width=16,
                                     num_layers=1, num_heads=2, mlp_dim=32)
  c.selection.reference_per_class = 8
  with pytest.raises(ValueError, match="needs a classification data set"):
    train.run(c, str(tmp_path / "lm"))


def test_make_selector_takes_its_section_and_explicit_values(noisy_config):
  """The builder reads only `config.selection`; batch size, seed, source,
  model and the table come as arguments."""
  c = noisy_config(scorer="loss", ratio=3, method="importance")
  source = data.make_source(c.data)
  model = models.make(c.model, source.spec)
  s = selection.make_selector(c.selection, batch_size=16, seed=0,
                              source=source, model=model)
  assert (s.k, s.groups) == (16, 1)
  assert selection.candidate_batch_size(c.selection, 16) == 48
  off = noisy_config()
  assert selection.make_selector(off.selection, batch_size=16, seed=0,
                                 source=source, model=model) is None
  assert selection.candidate_batch_size(off.selection, 16) == 16
  rho = noisy_config(scorer="reducible_loss")
  with pytest.raises(ValueError, match="needs config.selection."
                     "irreducible_table"):
    selection.make_selector(rho.selection, batch_size=16, seed=0,
                            source=source, model=model)


def test_bfloat16_scoring_ranks_as_float32_does(tiny):
  """score_dtype=bfloat16 runs the scoring pass in bfloat16 on the float32
  parameters: the scores are float32, close to float32 scoring's, and pick
  nearly the same top quarter."""
  _, model, params, batch = tiny
  scores = {}
  for dtype in ("float32", "bfloat16"):
    scoring = selector_lib.scoring_model(model, dtype)
    assert scoring.dtype == jnp.dtype(dtype)
    scores[dtype] = np.asarray(jax.jit(scorers.loss_scorer(scoring))(
        params, batch))
  assert scores["bfloat16"].dtype == np.float32
  np.testing.assert_allclose(scores["bfloat16"], scores["float32"],
                             rtol=0.05, atol=0.02)
  assert not np.array_equal(scores["bfloat16"], scores["float32"])
  top = lambda s: set(np.argsort(-s)[:8])
  assert len(top(scores["bfloat16"]) & top(scores["float32"])) >= 6
  with pytest.raises(ValueError, match="score_dtype must be one of "
                     r"\('float32', 'bfloat16'\), got 'float16'"):
    selector_lib.scoring_model(model, "float16")


def test_training_with_bfloat16_scoring(noisy_config, tmp_path):
  c = noisy_config(scorer="loss", ratio=2, score_dtype="bfloat16",
                   controller="off")
  c.total_steps = 20
  metrics = train.run(c, str(tmp_path))
  assert 0.0 <= metrics["accuracy"] <= 1.0
