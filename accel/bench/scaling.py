"""Throughput of the sharded train step: step time and examples/s per mesh
and precision.

For each (devices, layout, precision) the config's train step is compiled on
a mesh over the first `devices` devices (layout "data": all on the data
axis; "fsdp": all on the fsdp axis) with the global batch fixed, a few
warm-up steps run, then `steps` steps are timed on batches already on the
devices, so the number is the step alone (the input pipeline is measured by
the time-to-target benchmarks, which include it).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from accel import parallel
from accel.errors import ConfigError
from accel.train import build as build_lib


def layout_mesh(layout: str, devices: int):
  if layout == "data":
    return (("data", devices), ("fsdp", 1), ("tensor", 1))
  if layout == "fsdp":
    return (("data", 1), ("fsdp", devices), ("tensor", 1))
  raise ConfigError(f"Unknown layout {layout!r}; expected 'data' or 'fsdp'.")


def measure(config, *, devices: int, layout: str = "data",
            precision: str = "float32", steps: int = 20, warmup: int = 3,
            block_each_step: bool | None = None) -> dict[str, Any]:
  """One point: the mean time of `steps` steps after `warmup` untimed ones."""
  c = config.copy_and_resolve_references()
  c.precision.compute = precision
  c.mesh = layout_mesh(layout, devices)
  parts = build_lib.build(c, mesh=parallel.make_mesh(c.mesh))
  st = parts.steps
  it = parts.source.train_iterator(build_lib.candidates_per_step(c), c.seed)
  batches = [st.train_batch(next(it)) for _ in range(min(steps, 8))]
  state = st.init()
  t0 = time.perf_counter()
  train = st.train.lower(state, batches[0]).compile()
  compile_s = time.perf_counter() - t0
  block = st.block_each_step if block_each_step is None else block_each_step

  def run(n):
    nonlocal state
    metrics = None
    for i in range(n):
      state, metrics = train(state, batches[i % len(batches)])
      if block:
        jax.block_until_ready(metrics)
    jax.block_until_ready((state, metrics))
    return metrics

  run(warmup)
  t0 = time.perf_counter()
  metrics = run(steps)
  seconds = time.perf_counter() - t0
  loss = float(metrics["loss"])
  example = batches[0]["inputs"]
  tokens = c.batch_size * (int(np.prod(example.shape[1:]))
                           if parts.source.spec.task == "lm" else 1)
  return {"devices": devices, "layout": layout, "precision": precision,
          "mesh": dict(st.mesh.shape), "batch_size": c.batch_size,
          "step_ms": 1e3 * seconds / steps,
          "examples_per_s": c.batch_size * steps / seconds,
          "tokens_per_s": tokens * steps / seconds
                          if parts.source.spec.task == "lm" else None,
          "compile_s": compile_s, "final_loss": loss,
          "replicated_share": st.replicated_share,
          "platform": jax.devices()[0].platform,
          "device_kind": jax.devices()[0].device_kind}


def markdown(results: list[dict[str, Any]], title: str) -> str:
  # One device is one program whatever the layout: every layout of a
  # precision is compared with that precision's run on the fewest devices.
  base = {}
  for r in sorted(results, key=lambda r: r["devices"]):
    base.setdefault(r["precision"], r["examples_per_s"])
  lines = [f"# {title}", "",
           "| devices | layout | precision | step ms | examples/s | "
           "tokens/s | vs. fewest devices | compile s |",
           "|---|---|---|---|---|---|---|---|"]
  for r in results:
    tokens = f"{r['tokens_per_s']:,.0f}" if r["tokens_per_s"] else "-"
    rel = r["examples_per_s"] / base[r["precision"]]
    lines.append(
        f"| {r['devices']} | {r['layout']} | {r['precision']} | "
        f"{r['step_ms']:.2f} | {r['examples_per_s']:,.0f} | {tokens} | "
        f"{rel:.2f}x | {r['compile_s']:.1f} |")
  return "\n".join(lines) + "\n"
