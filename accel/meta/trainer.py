"""Meta-trains the gradient transformer's network: `run(config, workdir)`.

1. Tunes the base's learning rate on every task (`unrolled.tune_learning_rate`
   over `config.lr_grid`, `config.tune_steps` steps); the learned optimizer
   then trains at that rate, so it can win only by a better direction.
2. Measures the meta-gradient's signal at the start (`unrolled.gradient_snr`).
3. Each iteration takes one truncation's exact gradient on every task
   (backpropagation through the unroll), averages them and takes one Adam
   step. Streams past their horizon restart.
4. Measures the signal again at the end, then the ablation on every task:
   the learned network, its constant version (each tensor's coefficients
   averaged over the learned run) and the base, over `ablation_steps` steps
   and `ablation_seeds` seeds, as final eval log-losses relative to the base.

Resumable: orbax checkpoints of the weights, the meta-optimizer, every stream
and the measurements so far; a run stops at `num_iterations` or when its
train time reaches `max_minutes` (counted across resumes). The workdir gets
`gradient_transformer.msgpack` and `.json` (command, time,
signal, ablation, config): the two files that ship in accel/optim/weights/.
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

from accel.errors import ConfigError
from accel.meta import tasks as tasks_lib
from accel.meta import unrolled
from accel.optim import gt_network as net_lib
from accel.train import checkpoint as checkpoint_lib
from accel.train import metrics as metrics_lib

WEIGHTS_NAME = "gradient_transformer.msgpack"
METADATA_NAME = "gradient_transformer.json"
_TUNED_NAME = "tuned_learning_rates.json"
_RUN_LENGTH = ("num_iterations", "max_minutes", "log_every",
               "checkpoint_every", "keep_checkpoints", "snr_estimates",
               "ablation_steps", "ablation_seeds")


def _plain(x):
  if isinstance(x, ml_collections.ConfigDict):
    x = x.to_dict()
  return json.loads(json.dumps(x, default=lambda o: list(o)
                               if isinstance(o, tuple) else str(o)))


def tuned_rates(config, tasks, workdir) -> dict[str, dict[str, Any]]:
  """Each task's tuned base rate and its grid, cached in the workdir for
  the same tasks, grid, tuning steps and seed (any change tunes again)."""
  path = os.path.join(workdir, _TUNED_NAME)
  settings = _plain({"tasks": list(config.tasks), "lr_grid": config.lr_grid,
                     "tune_steps": config.tune_steps, "seed": config.seed})
  if os.path.exists(path):
    with open(path) as f:
      cached = json.load(f)
    if cached.get("settings") == settings:
      return cached["rates"]
  out = {}
  for name, task in sorted(tasks.items()):
    best, losses = unrolled.tune_learning_rate(
        task, tuple(config.lr_grid), config.tune_steps, seed=config.seed)
    if best in (min(config.lr_grid), max(config.lr_grid)):
      print(f"  {name}: the best base rate {best:g} is at the edge of the "
            f"grid {list(config.lr_grid)}.", flush=True)
    out[name] = {"learning_rate": best,
                 "grid": {f"{k:g}": v for k, v in losses.items()}}
    print(f"  {name}: tuned base rate {best:g}", flush=True)
  with open(path, "w") as f:
    json.dump({"settings": settings, "rates": out}, f, indent=2)
  return out


def build(config, workdir):
  names = [t["name"] for t in config.tasks]
  if len(set(names)) != len(names):
    raise ConfigError(f"meta-training task names must be unique: {names}.")
  tasks = {t["name"]: tasks_lib.make_task(t) for t in config.tasks}
  rates = tuned_rates(config, tasks, workdir)
  ranges = unrolled.Ranges(**{k: tuple(v)
                              for k, v in dict(config.ranges).items()})
  runners = {n: unrolled.Runner(
      t, learning_rate=rates[n]["learning_rate"],
      truncation=config.truncation, ranges=ranges,
      opt_kwargs=dict(config.optimizer), stream_rule=config.stream_rule,
      outlier_factor=config.outlier_factor) for n, t in tasks.items()}
  return runners, rates


def meta_optimizer(config):
  return optax.chain(optax.clip_by_global_norm(config.meta_grad_clip),
                     optax.adam(config.meta_learning_rate))


def initial_weights(config):
  """A fresh network, or `config.init_weights`'s (whose architecture must
  be `config.architecture`)."""
  arch = net_lib.Architecture(**dict(config.architecture))
  if not config.init_weights:
    return net_lib.init_weights(arch, seed=config.seed)
  theta, loaded, _ = net_lib.load_weights(config.init_weights)
  if loaded != arch:
    raise ConfigError(
        f"init_weights {config.init_weights!r} has architecture {loaded}, "
        f"but config.architecture is {arch}; set the architecture to match.")
  return theta


def _initial_state(config, runners):
  theta = initial_weights(config)
  key = jax.random.PRNGKey(config.seed)
  streams = {n: runners[n].init(theta, jax.random.fold_in(key, 100 + i),
                                config.streams)
             for i, n in enumerate(sorted(runners))}
  return {"theta": theta, "meta_opt_state": meta_optimizer(config).init(theta),
          "iteration": jnp.zeros([], jnp.int32), "streams": streams}


def ablation(config, runners, theta) -> dict[str, Any]:
  """Per task: final eval log-loss of the learned network and of its
  constant version, each minus the base's (negative = better), seeds
  averaged; and the mean over tasks."""
  rows = {}
  for name, runner in sorted(runners.items()):
    learned, constant = [], []
    for seed in range(config.ablation_seeds):
      key = jax.random.PRNGKey(10_000 + seed)
      base, _ = runner.run(None, key, config.ablation_steps)
      loss, mix_TxK = runner.run(theta, key, config.ablation_steps)
      fixed, _ = runner.run(None, key, config.ablation_steps,
                            fixed_mix=mix_TxK)
      learned.append(float(jnp.log(loss) - jnp.log(base)))
      constant.append(float(jnp.log(fixed) - jnp.log(base)))
    rows[name] = {"learned_vs_base": float(np.mean(learned)),
                  "constant_vs_base": float(np.mean(constant)),
                  "learned_vs_base_seeds": learned,
                  "constant_vs_base_seeds": constant}
  rows["mean"] = {k: float(np.mean([r[k] for r in rows.values()]))
                  for k in ("learned_vs_base", "constant_vs_base")}
  return rows


def run(config, workdir: str, *, stop_after: int | None = None):
  """Meta-trains (resuming from `workdir`); returns the final state."""
  os.makedirs(workdir, exist_ok=True)
  runners, rates = build(config, workdir)
  names = sorted(runners)
  meta_opt = meta_optimizer(config)
  # A checkpoint belongs to the config minus how long and how verbosely it
  # runs: a resumed run may get more iterations or minutes.
  identity = {k: v for k, v in _plain(config).items() if k not in _RUN_LENGTH}
  ckpt = checkpoint_lib.Checkpointer(workdir, {"meta_config": identity},
                                     config.keep_checkpoints)
  state = _initial_state(config, runners)
  extra = {"elapsed_s": 0.0, "snr_start": {}, "log": []}
  restored = ckpt.restore_latest(jax.eval_shape(lambda: state))
  if restored is not None:
    state, extra, _ = restored
    state = jax.tree.map(jnp.asarray, jax.device_get(state))
  elapsed = float(extra["elapsed_s"])
  key = jax.random.PRNGKey(config.seed + 1)
  writer = metrics_lib.MetricWriter(workdir)
  t0 = time.perf_counter()
  clock = lambda: elapsed + time.perf_counter() - t0
  if not extra["snr_start"]:
    print("Measuring the meta-gradient's signal at the start ...", flush=True)
    extra["snr_start"] = unrolled.gradient_snr(
        runners, state["theta"], state["streams"], jax.random.fold_in(key, 1_000_001),
        config.snr_estimates)
    print(f"  {extra['snr_start']}", flush=True)

  @jax.jit
  def apply(theta, opt_state, grad):
    updates, opt_state = meta_opt.update(grad, opt_state, theta)
    return (optax.apply_updates(theta, updates), opt_state,
            optax.tree.norm(grad))

  start = int(state["iteration"])
  last = config.num_iterations if stop_after is None else min(
      config.num_iterations, stop_after)
  print(f"Meta-training on {len(names)} tasks, iterations {start} to {last}, "
        f"{clock() / 60:.1f} of {config.max_minutes} minutes spent.",
        flush=True)
  window = []
  for it in range(start, last):
    if clock() >= 60 * config.max_minutes:
      print(f"Stopping at iteration {it}: the {config.max_minutes}-minute "
            "budget is spent.", flush=True)
      break
    k = jax.random.fold_in(key, it)
    grads, logs = [], {}
    for i, name in enumerate(names):
      runner = runners[name]
      meta, grad, streams, kept = runner.gradient(
          state["theta"], state["streams"][name], jax.random.fold_in(k, i))
      streams = jax.block_until_ready(runner.restart(
          state["theta"], streams, jax.random.fold_in(k, 1000 + i)))
      state["streams"][name] = streams
      grads.append(grad)
      logs[f"train/{name}/vs_base"] = float(meta)
      logs[f"train/{name}/grad_norm"] = float(optax.tree.norm(grad))
      logs[f"train/{name}/streams_kept"] = float(kept)
    grad = jax.tree.map(lambda *g: sum(g) / len(g), *grads)
    theta, opt_state, gnorm = apply(state["theta"], state["meta_opt_state"],
                                    grad)
    state.update(theta=theta, meta_opt_state=opt_state,
                 iteration=jnp.asarray(it + 1, jnp.int32))
    logs["train/vs_base"] = float(np.mean([logs[f"train/{n}/vs_base"]
                                           for n in names]))
    logs["train/meta_grad_norm"] = float(gnorm)
    window.append(logs)
    done = it + 1
    if done % config.log_every == 0 or done == last:
      means = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
      means["wall_clock_s"] = clock()
      writer.scalars(done, means)
      print(f"  iteration {done}: vs base {means['train/vs_base']:+.4f} "
            f"(log-loss), |grad| {means['train/meta_grad_norm']:.3g}, "
            f"{clock() / 60:.1f} min", flush=True)
      extra["log"] = list(extra["log"]) + [
          {"iteration": done, "vs_base": means["train/vs_base"],
           "minutes": round(clock() / 60, 2)}]
      window = []
    if done % config.checkpoint_every == 0 or done == last:
      extra["elapsed_s"] = clock()
      ckpt.save(done, state, extra)
  finished = int(state["iteration"])
  if ckpt.latest_step() != finished:
    extra["elapsed_s"] = clock()
    ckpt.save(finished, state, extra)
  ckpt.wait()
  ckpt.close()
  print("Measuring the signal at the end and the ablation ...", flush=True)
  snr_end = unrolled.gradient_snr(runners, state["theta"], state["streams"],
                                  jax.random.fold_in(key, 1_000_002),
                                  config.snr_estimates)
  rows = ablation(config, runners, state["theta"])
  writer.scalars(finished, {**snr_end, "ablation/learned_vs_base":
                            rows["mean"]["learned_vs_base"],
                            "ablation/constant_vs_base":
                            rows["mean"]["constant_vs_base"]})
  writer.close()
  export(workdir, config, state["theta"], finished, extra, snr_end, rows,
         rates)
  return state


def export(workdir, config, theta, iterations, extra, snr_end, ablation_rows,
           rates) -> dict[str, Any]:
  """Writes the weights file and its metadata JSON into `workdir`."""
  meta = {"command": " ".join(sys.argv),
          "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
          "meta_iterations": iterations,
          "meta_minutes": round(float(extra["elapsed_s"]) / 60, 1),
          "machine": f"{jax.devices()[0].platform} x{jax.device_count()}, "
                     f"{os.cpu_count()} CPU cores",
          "snr_start": dict(extra["snr_start"]), "snr_end": snr_end,
          "ablation": ablation_rows, "tuned_learning_rates": rates,
          "progress": list(extra["log"]), "config": _plain(config)}
  arch = net_lib.Architecture(**dict(config.architecture))
  net_lib.save_weights(os.path.join(workdir, WEIGHTS_NAME), theta, arch, meta)
  with open(os.path.join(workdir, METADATA_NAME), "w") as f:
    json.dump(meta, f, indent=2, sort_keys=True)
  return meta
