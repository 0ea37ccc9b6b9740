"""What `pip install accel` needs: the optimizers import and run with the
core dependencies alone (jax, flax, optax, chex, numpy); the training
stack is the `train` extra that `make train` and `make test` install."""

import os
import subprocess
import sys
import tomllib

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# What the `train` extra adds, as import names: none may be needed by
# `import accel.optim`.
TRAIN_ONLY = ("orbax", "ml_collections", "tensorflow_datasets",
              "importlib_resources", "grain", "array_record", "mnist1d",
              "sklearn", "tensorboardX", "tensorboard", "tqdm",
              "matplotlib")

_CORE_ONLY = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in BLOCKED:
      raise ModuleNotFoundError(f"{name} is not installed (core only)")
    return None
sys.meta_path.insert(0, Block())
import jax, jax.numpy as jnp, optax
import accel.optim
params = {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}
for tx in (accel.optim.gradient_transformer(1e-3, rows_per_step=64),
           accel.optim.meta_attention_adamw(1e-3),
           optax.chain(accel.optim.scale_by_gradient_transformer(
                           "default", rows_per_step=64),
                       accel.optim.scale_by_meta_attention_lr(1e-3))):
  # Jitted: eager op-by-op dispatch of these updates takes far longer.
  state = jax.jit(tx.init)(params)
  updates, state = jax.jit(tx.update)(jax.tree.map(jnp.ones_like, params),
                                      state, params, value=1.0)
print("ok", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""


def test_the_optimizers_need_only_the_core_dependencies():
  code = f"BLOCKED = {TRAIN_ONLY!r}\n" + _CORE_ONLY
  r = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stdout.strip() == "ok []"


def test_pyproject_keeps_the_training_stack_in_an_extra():
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
  core = {d.split(">")[0].split("=")[0] for d in project["dependencies"]}
  assert core == {"jax", "flax", "optax", "chex", "numpy"}
  extra = {d.split(">")[0].split("=")[0]
           for d in project["optional-dependencies"]["train"]}
  # Everything requirements.txt pins, but for the core and the test tools.
  with open(os.path.join(REPO, "requirements.txt")) as f:
    pinned = {line.split("==")[0].strip().lower()
              for line in f if line.strip() and not line.startswith("#")}
  tools = {"pytest", "pytest-xdist", "nbclient", "nbformat", "ipykernel",
           "jaxlib"}
  assert pinned - tools - core == {e.lower() for e in extra}
