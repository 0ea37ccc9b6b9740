"""Test set-up: 8 simulated CPU devices, set before jax is imported, and
one persistent compilation cache for the whole session.

Many tests compile the same programs (the debug configs' train steps, the
binaries and notebooks run as subprocesses, the multi-host workers). JAX's
persistent cache, in a fresh temporary folder made by the first process of
the session (pytest, or pytest-xdist's controller) and inherited through
the environment by the workers and subprocesses, compiles each once: on 2
cores the suite took 8m01s and 8m42s in two runs with it, 9m34s without.
It starts empty every session, so a clean clone's timing is the one
measured here. A JAX_COMPILATION_CACHE_DIR set by the caller is used
instead.
"""

import atexit
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="accel_test_jax_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  # Programs that compile in under a second are cheaper to compile again
  # than to write out.
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
