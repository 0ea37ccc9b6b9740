"""Activation checkpointing: every policy gives the same loss and
gradients as none, the models without blocks refuse one, and `auto`
picks the fastest policy that fits the budget."""

import jax
import numpy as np
import pytest

from accel import data
from accel import models
from accel.models import remat as remat_lib
from accel.train import config as config_lib
from accel.train import remat as remat_choice
from accel.train import step as step_lib

_CASES = {
    "lm": ({"name": "sequence", "task": "lm", "num_train": 64,
            "num_test": 16},
           {"name": "transformer_lm", "width": 32, "num_layers": 2,
            "num_heads": 2, "mlp_dim": 64, "dropout": 0.1}),
    "resnet": ({"name": "textures", "num_train": 64, "num_test": 16},
               {"name": "resnet", "stage_channels": (8, 16),
                "blocks_per_stage": 1}),
    "vit": ({"name": "digits"},
            {"name": "transformer", "width": 32, "num_layers": 2,
             "num_heads": 2, "mlp_dim": 64, "patch_size": 4}),
}


@pytest.mark.parametrize("case", sorted(_CASES))
def test_every_policy_gives_the_same_loss_and_gradients(case):
  data_cfg, model_cfg = _CASES[case]
  source = data.make_source(data_cfg)
  batch = source.fetch("train", np.arange(8))
  base = models.make(model_cfg, source.spec)
  params = jax.jit(lambda k: base.init(
      k, models.dummy_inputs(source.spec), train=False))(
          jax.random.PRNGKey(0))["params"]
  rng = jax.random.PRNGKey(1)

  def loss_and_grads(model):
    fn = jax.jit(jax.value_and_grad(
        lambda p: step_lib.loss_and_stats(p, model, batch, rng, True)[0]))
    return fn(params)
  want_loss, want_grads = loss_and_grads(base)
  for policy in remat_lib.POLICIES[1:]:
    model = models.make(model_cfg, source.spec, remat=policy)
    loss, grads = loss_and_grads(model)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(
        a, b, rtol=1e-5, atol=1e-6), grads, want_grads)


def test_remat_errors_are_named():
  spec = data.make_source({"name": "digits"}).spec
  with pytest.raises(ValueError, match="has no blocks to rematerialise"):
    models.make({"name": "mlp"}, spec, remat="full")
  with pytest.raises(ValueError, match="Unknown remat policy 'some'"):
    models.make({"name": "resnet"}, spec, remat="some")
  with pytest.raises(ValueError, match=r"remat_names \['nope'\]"):
    models.make({"name": "resnet"}, spec, remat="save_names",
                remat_names=("nope",))
  c = config_lib.load_file("configs/lm_transformer.py:debug")
  c.remat = "most"
  with pytest.raises(ValueError, match="config.remat must be one of"):
    config_lib.validate(c)


def test_auto_picks_the_fastest_policy_under_the_budget(monkeypatch):
  table = {"none": (40.0, 10.0), "dots_saveable": (30.0, 12.0),
           "save_names": (25.0, 11.0), "full": (20.0, 15.0),
           "offload": None}

  def measure(config, policy, **_):
    if table[policy] is None:
      return {"policy": policy, "error": "no host memory"}
    peak, ms = table[policy]
    return {"policy": policy, "peak_mb": peak, "step_ms": ms}
  monkeypatch.setattr(remat_choice, "measure", measure)
  c = config_lib.load_file("configs/lm_transformer.py:debug")
  said = []
  cands = tuple(table)
  for budget, want in ((0, "none"), (35, "save_names"), (28, "save_names"),
                       (22, "full")):
    c.memory_budget_mb = budget
    chosen, rows = remat_choice.choose(c, candidates=cands, log=said.append)
    assert chosen == want and len(rows) == len(cands)
  assert any("offload" in s and "unavailable" in s for s in said)
  c.memory_budget_mb = 10
  with pytest.raises(ValueError, match="No remat policy fits config."
                     "memory_budget_mb=10: the smallest peak is full's "
                     "20.00 MB"):
    remat_choice.choose(c, candidates=cands, log=said.append)
  c.remat = "auto"
  c.memory_budget_mb = 22
  assert remat_choice.resolve(c, candidates=cands,
                              log=said.append).remat == "full"


@pytest.mark.slow
def test_train_binary_prints_the_choice_and_every_candidate(tmp_path,
                                                           one_device_env):
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  out = subprocess.run(
      [sys.executable, os.path.join(repo, "launch", "train.py"),
       "--config", os.path.join(repo, "configs", "lm_transformer.py:debug"),
       "--config.remat=auto", "--config.memory_budget_mb=64",
       "--config.progress_bar=False", "--config.total_steps=4",
       "--config.eval_every=0", "--workdir", str(tmp_path / "w")],
      cwd=repo, capture_output=True, text=True, timeout=600,
      env=one_device_env)
  assert out.returncode == 0, out.stderr[-2000:]
  for policy in remat_lib.POLICIES:
    assert f"remat {policy} " in out.stdout
  assert "remat=auto chose" in out.stdout and "under 64 MB" in out.stdout
  assert os.path.exists(tmp_path / "w" / "remat.json")
