"""Test set-up: 8 simulated CPU devices, set before jax is imported, and
one persistent compilation cache for the whole session.

Many tests compile the same programs (the debug configs' train steps, the
binaries and notebooks run as subprocesses, the multi-host workers). JAX's
persistent cache, in a fresh temporary folder made by the first process of
the session (pytest, or pytest-xdist's controller) and inherited through
the environment by the workers and subprocesses, compiles each once: on 2
cores the suite took 8m01s and 8m42s in two runs with it, 9m34s without
(when it was smaller). It starts empty every session, so a clean clone's
timing is the one measured here. LLVM's optimisation level 0 (below) then
took the grown suite from 15m35s to 9m17s (`pytest -n 2`, 2026-12-03);
a fresh clone's `make test` then took 11m13s, install included (pytest
10m14s): still over the 10-minute budget. Without the fusion emitters
(below), with lazy imports of scikit-learn and mnist1d and a 0.25 s cache
floor, a fresh clone's `make test` took 9m10s (pytest 8m03s) on
2026-12-04's machine (a Zen 3 EPYC, on which the suite had taken 12m55s
before these changes). A JAX_COMPILATION_CACHE_DIR set by the caller is
used instead.
"""

import atexit
import os
import shutil
import tempfile

import pytest

# LLVM's optimisation level 0: the tests' programs are tiny and compile
# more than they run, and at the default level XLA:CPU spent most of a
# test's time in LLVM (a tiny ResNet's jitted init: 6.6 s, 1.9 s at 0).
# XLA:CPU's older loop emitters instead of its MLIR fusion emitters: they
# compile the same programs faster (the meta-training debug test's 180
# compiles: 28.5 s of compile time with the fusion emitters, 15.4 s without,
# JAX_LOG_COMPILES=1, 2026-12-04).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8"
                           " --xla_backend_optimization_level=0"
                           " --xla_cpu_use_fusion_emitters=false")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="accel_test_jax_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  # Programs that compile in under a quarter second are cheaper to compile
  # again than to write out; with the flags above most train steps compile
  # in under a second, so a 1 s floor cached few of them (tests/train and
  # tests/test_configs.py, -n 2: 126 s with 1 s, 107 s and 110 s with
  # 0.25 s, 113 s with 0.1 s; 2026-12-04).
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.25")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)


@pytest.fixture
def one_device_env():
  """The environment for a subprocess that need not run on the 8 simulated
  devices (a binary's flags, output and resume): compiling and running for
  8 devices on 2 cores made such a test take a third longer."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = " ".join(
      f for f in env.get("XLA_FLAGS", "").split()
      if not f.startswith("--xla_force_host_platform_device_count"))
  return env


# --- The tiny training config the train and sweep tests share -----------

def _tiny_config(**overrides):
  """A synthetic-data MLP run of 8 steps, with evaluation and checkpoints
  every 4 steps; `overrides` set top-level keys."""
  # Imported here: jax must not load before the flags above are set.
  from accel.train import config as config_lib  # pylint: disable=g-import-not-at-top
  c = config_lib.base_config()
  c.data = config_lib.data_section("synthetic", num_train=256, num_test=64,
                                   dim=8)
  c.model = config_lib.model_section("mlp", hidden=(16,), dropout=0.1)
  c.optim = config_lib.optim_section("adamw", learning_rate=1e-2,
                                     schedule="cosine", warmup_steps=2)
  c.total_steps, c.batch_size, c.eval_batch_size = 8, 16, 32
  c.log_every, c.eval_every, c.checkpoint_every = 2, 4, 4
  c.progress_bar = False
  c.update(overrides)
  return c


@pytest.fixture(scope="session")
def tiny_config():
  """The function above: `tiny_config(total_steps=4)`."""
  return _tiny_config
