"""Per-step cost of an optimizer against AdamW on the benchmark models.

For each model (a training config's model, data and batch size) and each
optimizer it measures:

  update_ms  the optimizer update alone: `steps` chained `tx.update` +
             `apply_updates` calls inside one jitted `lax.scan` (so the
             timing is compute, not Python dispatch), divided by `steps`;
  step_ms    the whole train step (forward, backward, update): `steps`
             calls of the jitted step dispatched back to back (as the train
             loop runs it, less its input pipeline), blocked on at the end,
             divided by `steps`. Not a scan: inside XLA:CPU's while loop a
             convolution runs several times slower than in its own program
             (the stop note of session 7 has the figures), which made every
             CNN's step look slower and its optimizer's share smaller;
  state_bytes  the optimizer state's size.

Methods are interleaved (A B A B ...) over `rounds` rounds and the median
is reported (each round's step time is kept too, `step_ms_rounds`, for the
intervals of accel.bench.intervals), with the 1-minute load average at
each measurement: the machines are shared and noisy. Compile time is
excluded (one warm-up call).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel.train import build as build_lib


def _timed(fn: Callable[[], Any]) -> float:
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - t0


def _state_bytes(tree) -> int:
  return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)))


def _programs(config, optim_section, steps: int):
  """(update_fn, step_fn, state_bytes) for one model and optimizer, built
  as a run builds them (accel.train.build: mesh, precision policy)."""
  c = config.copy_and_resolve_references()
  c.optim = optim_section
  c.total_steps = 10_000
  parts = build_lib.build(c)
  compiled, optimizer = parts.steps, parts.optimizer
  state = compiled.init()
  batch = compiled.train_batch(next(parts.source.train_iterator(
      build_lib.candidates_per_step(c), seed=0)))
  grads = jax.tree.map(lambda p: 1e-3 * jnp.ones_like(p), state.params)

  @jax.jit
  def updates_only(params, opt_state):
    def body(carry, _):
      p, s = carry
      u, s = optimizer.tx.update(grads, s, p, value=jnp.float32(1.0))
      return (optax.apply_updates(p, u), s), None
    return jax.lax.scan(body, (params, opt_state), None, length=steps)[0]

  # The train step donates its state: the timed steps carry it on from one
  # timing to the next.
  current = {"state": state}

  def train_steps():
    st = current["state"]
    for _ in range(steps):
      st, metrics = compiled.train(st, batch)
      if compiled.block_each_step:
        jax.block_until_ready(metrics)
    current["state"] = st
    return st

  params, opt_state = state.params, state.opt_state
  state_bytes = _state_bytes(opt_state)
  # The update-only program reads copies: the train step donates `state`.
  params, opt_state = jax.tree.map(jnp.copy, (params, opt_state))
  return (lambda: updates_only(params, opt_state), train_steps, state_bytes)


def measure(workloads: dict[str, Any], methods: dict[str, Any], *,
            steps: int = 20, rounds: int = 7) -> list[dict[str, Any]]:
  """One row per (workload, method); see the module docstring."""
  rows = []
  for wname, config in workloads.items():
    progs = {m: _programs(config, section, steps)
             for m, section in methods.items()}
    for m, (upd, stp, _) in progs.items():  # compile
      _timed(upd)
      _timed(stp)
    times = {m: {"update": [], "step": []} for m in progs}
    loads = []
    names = list(progs)
    for r in range(rounds):
      order = names if r % 2 == 0 else names[::-1]
      for m in order:
        upd, stp, _ = progs[m]
        times[m]["update"].append(_timed(upd) / steps)
        times[m]["step"].append(_timed(stp) / steps)
      loads.append(os.getloadavg()[0])
    for m in names:
      rows.append({
          "workload": wname, "method": m,
          "update_ms": 1e3 * float(np.median(times[m]["update"])),
          "step_ms": 1e3 * float(np.median(times[m]["step"])),
          "step_ms_rounds": [1e3 * t for t in times[m]["step"]],
          "state_bytes": progs[m][2],
          "load_avg_1m": [round(x, 2) for x in loads]})
  return rows


def ratios(rows: list[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
  """Adds each row's update, step and state ratios to the baseline's."""
  base = {r["workload"]: r for r in rows if r["method"] == baseline}
  out = []
  for r in rows:
    b = base[r["workload"]]
    out.append({**r, "update_ratio": r["update_ms"] / b["update_ms"],
                "step_ratio": r["step_ms"] / b["step_ms"],
                "state_ratio": r["state_bytes"] / max(b["state_bytes"], 1)})
  return out


def markdown(rows: list[dict[str, Any]]) -> str:
  lines = ["| workload | method | update ms | x AdamW | step ms | x AdamW | "
           "state MB | x AdamW |", "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['workload']} | {r['method']} | {r['update_ms']:.3f} | "
        f"{r['update_ratio']:.2f} | {r['step_ms']:.3f} | "
        f"{r['step_ratio']:.2f} | {r['state_bytes'] / 1e6:.2f} | "
        f"{r['state_ratio']:.2f} |")
  return "\n".join(lines)
