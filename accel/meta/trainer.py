"""Meta-trains the gradient transformer's weights: `run(config, workdir)`.

Each meta-iteration draws `tasks_per_iteration` tasks from `config.tasks`,
runs one antithetic truncated-ES truncation on each (see truncated_es), and
takes one Adam step on the averaged gradient. Every `eval_every` iterations
it runs fixed, deterministic inner trainings with the current weights and
with AdamW (the same weights with a zero output layer) and logs the
difference of their mean log-losses.

The workdir gets TensorBoard events, orbax checkpoints (weights, meta
optimizer state, every stream's inner state: a resumed run continues exactly)
and `gradient_transformer.msgpack` + `gradient_transformer.json`: the
weights and their metadata (config, iterations, wall-clock, evaluation), the
two files that ship in `accel/optim/weights/`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from accel.errors import ConfigError
from accel.optim import gt_network
from accel.meta import tasks as tasks_lib
from accel.meta import truncated_es
from accel.train import checkpoint as checkpoint_lib
from accel.train import metrics as metrics_lib

WEIGHTS_NAME = "gradient_transformer.msgpack"
METADATA_NAME = "gradient_transformer.json"


def _architecture(config) -> gt_network.Architecture:
  return gt_network.Architecture(**dict(config.architecture))


def _ranges(config) -> truncated_es.InnerRanges:
  return truncated_es.InnerRanges(**{
      k: tuple(v) for k, v in dict(config.inner).items()})


def _to_plain(x):
  if isinstance(x, ml_collections.ConfigDict):
    x = x.to_dict()
  return json.loads(json.dumps(x, default=lambda o: list(o)
                               if isinstance(o, tuple) else str(o)))


def build_runners(config) -> dict[str, truncated_es.TaskRunner]:
  arch, ranges = _architecture(config), _ranges(config)
  names = [t["name"] for t in config.tasks]
  if len(set(names)) != len(names):
    raise ConfigError(f"meta-training task names must be unique: {names}.")
  return {t["name"]: truncated_es.TaskRunner(
      tasks_lib.make_task(t), arch, ranges, config.truncation,
      config.num_pairs, config.num_reference) for t in config.tasks}


def _initial_state(config, runners):
  arch = _architecture(config)
  key = jax.random.PRNGKey(config.seed)
  theta = gt_network.init_weights(arch, seed=config.seed,
                                  output_scale=config.init_output_scale)
  meta_opt = meta_optimizer(config)
  streams = {}
  for i, (name, runner) in enumerate(sorted(runners.items())):
    s = runner.init_streams(jax.random.fold_in(key, 1000 + i),
                            config.num_pairs)
    streams[name] = {"streams": s,
                     "refs": jax.tree.map(lambda x: x[:config.num_reference],
                                          s)}
  return {"theta": theta, "meta_opt_state": meta_opt.init(theta),
          "iteration": jnp.zeros([], jnp.int32),
          "key": jax.random.fold_in(key, 1), "streams": streams}


def meta_optimizer(config):
  return optax.chain(optax.clip_by_global_norm(config.meta_grad_clip),
                     optax.adam(config.meta_learning_rate))


def evaluate(config, runners, theta) -> dict[str, float]:
  """Per task and overall: mean log-loss of theta minus AdamW's (fixed runs)."""
  key = jax.random.PRNGKey(config.seed + 12345)
  out = {}
  for name, runner in sorted(runners.items()):
    lopt, adam = runner.evaluate(theta, key, steps=config.eval_steps)
    out[f"eval/{name}/vs_adamw"] = float(lopt - adam)
  out["eval/vs_adamw"] = float(np.mean(list(out.values())))
  return out


def run(config, workdir: str, *, stop_after: int | None = None):
  """Meta-trains; resumes from the newest checkpoint in `workdir`."""
  os.makedirs(workdir, exist_ok=True)
  runners = build_runners(config)
  names = sorted(runners)
  meta_opt = meta_optimizer(config)
  ckpt = checkpoint_lib.Checkpointer(
      workdir, {"meta_config": _to_plain(config)}, config.keep_checkpoints)
  state = _initial_state(config, runners)
  restored = ckpt.restore_latest(jax.eval_shape(lambda: state))
  elapsed = 0.0
  if restored is not None:
    state, extra, _ = restored
    elapsed = float(extra["elapsed_s"])
    # Uncommitted like a fresh state (restored arrays are committed to a
    # device), so a resumed run lowers the same programs as a fresh one and
    # the compilation cache serves both.
    state = jax.tree.map(jnp.asarray, jax.device_get(state))
  writer = metrics_lib.MetricWriter(workdir)
  start_it = int(state["iteration"])
  sigma = jnp.float32(config.sigma)
  print(f"Meta-training on {len(names)} tasks, iterations {start_it} to "
        f"{config.num_iterations}, in {workdir}; the first iterations "
        "compile each task's programs (a minute or more on a CPU).",
        flush=True)

  @jax.jit
  def apply(theta, opt_state, grads):
    updates, opt_state = meta_opt.update(grads, opt_state, theta)
    return optax.apply_updates(theta, updates), opt_state, \
        optax.tree.norm(grads)

  last = config.num_iterations if stop_after is None else min(
      config.num_iterations, stop_after)
  bar = tqdm.tqdm(total=config.num_iterations, initial=start_it,
                  disable=not config.progress_bar, desc="meta-train",
                  file=sys.stdout, dynamic_ncols=True)
  eval_metrics = {}
  t0 = time.perf_counter()
  window = []
  for it in range(start_it, last):
    key = jax.random.fold_in(state["key"], it)
    picks = jax.random.choice(jax.random.fold_in(key, 0), len(names),
                              (config.tasks_per_iteration,),
                              replace=len(names) < config.tasks_per_iteration)
    grads, logs = [], {}
    for j, idx in enumerate(np.asarray(picks)):
      name = names[int(idx)]
      runner, st = runners[name], state["streams"][name]
      k_unroll, k_restart = jax.random.split(jax.random.fold_in(key, j + 1))
      s, r, g, m = runner.unroll(state["theta"], st["streams"], st["refs"],
                                 k_unroll, sigma)
      # One program in flight at a time: with several queued, XLA:CPU
      # has deadlocked here on 2 cores (as in jax issue 25861).
      s, r, _ = jax.block_until_ready(runner.restart(s, r, k_restart))
      state["streams"][name] = {"streams": s, "refs": r}
      grads.append(g)
      for k, v in m.items():
        logs[f"train/{name}/{k}"] = v
    grad = jax.tree.map(lambda *g: sum(g) / len(g), *grads)
    theta, opt_state, gnorm = apply(state["theta"], state["meta_opt_state"],
                                    grad)
    state.update(theta=theta, meta_opt_state=opt_state,
                 iteration=jnp.asarray(it + 1, jnp.int32))
    logs["train/meta_grad_norm"] = gnorm
    window.append(logs)
    done = it + 1
    if done % config.log_every == 0 or done == last:
      means = {k: float(np.mean([float(w[k]) for w in window if k in w]))
               for k in set().union(*window)}
      for kind in ("meta_loss", "vs_adamw"):
        vals = [v for k, v in means.items() if k.endswith("/" + kind)]
        means[f"train/{kind}"] = float(np.mean(vals))
      means["wall_clock_s"] = elapsed + time.perf_counter() - t0
      writer.scalars(done, means)
      bar.set_postfix(vs_adamw=f"{means['train/vs_adamw']:+.4f}",
                      eval=f"{eval_metrics.get('eval/vs_adamw', 0):+.4f}")
      window = []
    if config.eval_every and (done % config.eval_every == 0 or done == last):
      eval_metrics = evaluate(config, runners, state["theta"])
      writer.scalars(done, eval_metrics)
    if done % config.checkpoint_every == 0 or done == last:
      ckpt.save(done, state, {"elapsed_s": elapsed + time.perf_counter()
                              - t0})
      export(workdir, config, state["theta"], done,
             elapsed + time.perf_counter() - t0, eval_metrics)
    bar.update(1)
  bar.close()
  ckpt.wait()
  ckpt.close()
  writer.close()
  return state


def export(workdir: str, config, theta, iterations: int, wall_clock_s: float,
           eval_metrics: dict[str, float]) -> None:
  """Writes the weights file and its metadata JSON into `workdir`."""
  meta = {"meta_iterations": iterations,
          "meta_wall_clock_s": round(wall_clock_s, 1),
          "command": " ".join(sys.argv),
          "machine": f"{jax.devices()[0].platform} x{jax.device_count()}, "
                     f"{os.cpu_count()} CPU cores",
          "meta_eval": eval_metrics,
          "config": _to_plain(config)}
  gt_network.save_weights(os.path.join(workdir, WEIGHTS_NAME), theta,
                          _architecture(config), meta)
  with open(os.path.join(workdir, METADATA_NAME), "w") as f:
    json.dump(meta, f, indent=2, sort_keys=True)
