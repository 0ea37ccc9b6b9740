"""Knowledge distillation: the loss against a reference, the teacher's
checks, sharding and dtype, and a run that distils."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from accel import parallel
from accel import train
from accel.errors import ConfigError
from accel.errors import MissingFileError
from accel.train import build as build_lib
from accel.train import config as config_lib
from accel.train import distill as distill_lib
from accel.train import step as step_lib


class _Linear(nn.Module):
  classes: int = 5

  @nn.compact
  def __call__(self, x, train=False):
    del train
    return nn.Dense(self.classes)(x)


def _reference(student, teacher, labels, weights, t, alpha):
  """(1 - alpha) * CE + alpha * T^2 * KL(p_t^T || p_s^T), weighted mean, in
  numpy float64."""
  def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))
  s, te = student.astype(np.float64), teacher.astype(np.float64)
  ce = -log_softmax(s)[np.arange(len(labels)), labels]
  pt = np.exp(log_softmax(te / t))
  kl = (pt * (log_softmax(te / t) - log_softmax(s / t))).sum(-1)
  per = (1 - alpha) * ce + alpha * t * t * kl
  return (per * weights).sum() / weights.sum()


@pytest.mark.parametrize("t, alpha", [(1.0, 0.5), (4.0, 0.9), (2.0, 0.0),
                                      (3.0, 1.0)])
def test_the_loss_equals_a_reference_computation(t, alpha):
  model = _Linear()
  rng = np.random.default_rng(0)
  x = rng.normal(size=(12, 7)).astype(np.float32)
  labels = rng.integers(0, 5, 12)
  mask = (rng.uniform(size=12) > 0.3).astype(np.float32)
  params = model.init(jax.random.PRNGKey(0), x)["params"]
  teacher = rng.normal(size=(12, 5)).astype(np.float32) * 3
  batch = {"inputs": jnp.asarray(x), "label": jnp.asarray(labels),
           "label_mask": jnp.asarray(mask)}
  loss, stats = step_lib.loss_and_stats(
      params, model, batch, jax.random.PRNGKey(1), False,
      jnp.asarray(teacher), distill_lib.Distill(model, t, alpha))
  student = np.asarray(model.apply({"params": params}, x))
  np.testing.assert_allclose(
      float(loss), _reference(student, teacher, labels, mask, t, alpha),
      rtol=1e-5)
  hard, _ = step_lib.loss_and_stats(params, model, batch,
                                    jax.random.PRNGKey(1), False)
  np.testing.assert_allclose(float(stats["hard_loss_sum"] / mask.sum()),
                             float(hard), rtol=1e-6)


def test_the_soft_term_vanishes_when_the_student_is_the_teacher():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3, 6)))
  np.testing.assert_allclose(
      distill_lib.soft_loss_BxT(logits, logits, 2.5), 0.0, atol=1e-6)


def test_bad_distill_values_are_named(tiny_config):
  for key, value, message in [("temperature", 0.0, "temperature must be > 0"),
                              ("alpha", 1.5, r"alpha .* in \[0, 1\]")]:
    c = tiny_config()
    c.distill[key] = value
    with pytest.raises(ConfigError, match=message):
      config_lib.validate(c)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_config):
  """A finished run of a wider MLP than the tiny config's."""
  c = tiny_config()
  c.model.hidden = (64,)
  workdir = str(tmp_path_factory.mktemp("teacher"))
  train.run(c, workdir)
  return workdir


def test_a_teacher_trained_on_other_data_is_refused(teacher_dir, tmp_path,
                                                    tiny_config):
  c = tiny_config()
  c.data.num_classes = 3
  c.distill.teacher = teacher_dir
  with pytest.raises(ConfigError, match=r"other data than the student.*"
                     r"num_classes: 10 \(teacher\) vs 3 \(student\)"):
    train.run(c, str(tmp_path / "s"))


def test_a_teacher_that_is_no_run_is_refused(tmp_path, tiny_config):
  c = tiny_config()
  c.distill.teacher = str(tmp_path / "nothing")
  with pytest.raises(MissingFileError, match="not a run's workdir"):
    train.run(c, str(tmp_path / "s"))


@pytest.mark.slow
def test_a_student_distils_and_logs_both_terms(teacher_dir, tmp_path,
                                               tiny_config):
  c = tiny_config()
  c.distill.teacher, c.distill.alpha = teacher_dir, 0.7
  workdir = str(tmp_path / "s")
  result = train.run(c, workdir)
  assert result["step"] == 8
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  events = event_accumulator.EventAccumulator(
      os.path.join(workdir, "tensorboard"))
  events.Reload()
  tags = events.Tags()["scalars"]
  assert {"train/distill/hard_loss", "train/distill/soft_loss"} <= set(tags)
  # The same student with alpha = 0 trains exactly as without a teacher.
  plain = train.run(tiny_config(), str(tmp_path / "plain"))
  c0 = tiny_config()
  c0.distill.teacher, c0.distill.alpha = teacher_dir, 0.0
  zero = train.run(c0, str(tmp_path / "zero"))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-6),
               jax.device_get(plain["state"].params),
               jax.device_get(zero["state"].params))


@pytest.mark.slow
def test_the_teacher_is_sharded_like_the_student_in_the_compute_dtype(
    teacher_dir, tiny_config):
  c = tiny_config()
  c.distill.teacher = teacher_dir
  c.mesh = (("data", 2), ("fsdp", 4), ("tensor", 1))
  c.model.hidden = (64,)  # the teacher's shape: the shardings can be compared
  c.max_replicated_share = 1.0
  c.precision.compute = "bfloat16"
  parts = build_lib.build(c, mesh=parallel.make_mesh(c.mesh))
  teacher = parts.teacher
  for t_param, s_sharding in zip(jax.tree.leaves(teacher.params),
                                 jax.tree.leaves(parts.steps.shardings.params)):
    assert t_param.sharding == s_sharding
  assert any(len(set(p.sharding.spec) - {None}) for p in
             jax.tree.leaves(teacher.params))  # fsdp splits some of them
  assert teacher.distill.model.dtype == jnp.bfloat16
  assert os.path.samefile(teacher.workdir, teacher_dir)
