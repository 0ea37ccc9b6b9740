"""Activation checkpointing on this machine: peak memory and step time per
policy, and the batch-size headroom a policy buys under a memory budget.

  .venv/bin/python benchmarks/remat/measure.py [lm|resnet|scan ...]

For each model (the text LM of configs/text_lm.py at 4,096 tokens a step;
ResNet-20 on the textures at batch 128), every policy of
accel.models.remat compiles the real train step (AdamW): XLA's memory
analysis of the compiled step gives its peak (accel.train.memory), and the
median of 10 timed steps its speed. Headroom: the largest power-of-two
batch whose compiled peak fits the budget of policy none's peak at the
base batch (compile only). `scan`: a 16-layer tanh MLP chain in pure JAX,
its gradient with and without jax.checkpoint per layer, unrolled and under
lax.scan: whether XLA:CPU's scheduler keeps what remat saves.
Writes benchmarks/remat/results.md (appends the machine line).
"""

import json
import os
import sys

import jax
import jax.numpy as jnp

from accel.bench import host
from accel.models import remat as remat_lib
from accel.train import build as build_lib
from accel.train import config as config_lib
from accel.train import memory as memory_lib
from accel.train import remat as remat_choice

OUT = os.path.dirname(os.path.abspath(__file__))


def lm_config(batch=32):
  c = config_lib.load_file("configs/text_lm.py")
  c.data.max_train_bytes, c.data.max_test_bytes = 1 << 20, 1 << 16
  c.batch_size = batch
  return c


def resnet_config(batch=128):
  c = config_lib.load_file("configs/textures_resnet.py")
  c.data.num_train, c.data.num_test = 4096, 512
  c.batch_size = batch
  return c


def peak(config, policy, batch):
  c = config.copy_and_resolve_references()
  c.batch_size, c.remat = batch, policy
  parts = build_lib.build(c)
  it = parts.source.train_iterator(batch, 0)
  b = parts.steps.train_batch(next(it))
  return memory_lib.compiled_mb(parts.steps.train.lower(
      parts.steps.abstract_state, b).compile())


def headroom(config, policy, budget, base):
  best, batch = None, base
  while batch <= 16 * base:
    mb = peak(config, policy, batch)
    if mb is None or mb > budget:
      break
    best, batch = batch, 2 * batch
  return best


def model_rows(name, make):
  config = make()
  rows = [remat_choice.measure(config, p, steps=10)
          for p in remat_lib.POLICIES]
  base = rows[0]["peak_mb"]
  for r in rows:
    if "error" not in r:
      r["headroom_batch"] = headroom(config, r["policy"], base,
                                     config.batch_size)
    print(name, r, flush=True)
  return rows


def scan_rows():
  def layer(w, x):
    return jnp.tanh(x @ w)
  ws = jnp.full((16, 512, 512), 0.01)
  x = jnp.ones((4096, 512))
  out = []
  for scanned in (False, True):
    for remat in (False, True):
      f = jax.checkpoint(layer, prevent_cse=True) if remat else layer
      if scanned:
        loss = lambda ws, x: jnp.sum(jax.lax.scan(
            lambda h, w: (f(w, h), None), x, ws)[0])
      else:
        def loss(ws, x):
          for i in range(16):
            x = f(ws[i], x)
          return jnp.sum(x)
      c = jax.jit(jax.grad(loss)).lower(ws, x).compile()
      out.append({"scanned": scanned, "remat": remat, "temp_mb":
                  c.memory_analysis().temp_size_in_bytes / 2**20})
      print(out[-1], flush=True)
  return out


def main(which):
  results = {}
  if "lm" in which:
    results["text LM (4,096 tokens a step)"] = model_rows("lm", lm_config)
  if "resnet" in which:
    results["ResNet-20, batch 128"] = model_rows("resnet", resnet_config)
  if "scan" in which:
    results["scan"] = scan_rows()
  machine = host.describe(jax.__version__, jax.devices()[0].device_kind)
  lines = [f"`.venv/bin/python benchmarks/remat/measure.py {' '.join(which)}`",
           "", machine, ""]
  for title, rows in results.items():
    if title == "scan":
      lines += ["Pure JAX, a 16-layer 512-wide tanh chain at batch 4,096, "
                "gradient; XLA's temporary memory:", "",
                "| layers | jax.checkpoint per layer | temp MB |",
                "|---|---|---|"]
      lines += [f"| {'lax.scan' if r['scanned'] else 'unrolled'} | "
                f"{'yes' if r['remat'] else 'no'} | {r['temp_mb']:.0f} |"
                for r in rows]
      lines.append("")
      continue
    lines += [f"{title}:", "", "| policy | compiled peak MB | step ms | "
              "largest batch under none's peak |", "|---|---|---|---|"]
    for r in rows:
      if "error" in r:
        lines.append(f"| {r['policy']} | unavailable: {r['error']} | - | - |")
      else:
        lines.append(f"| {r['policy']} | {r['peak_mb']:.1f} | "
                     f"{r['step_ms']:.1f} | {r['headroom_batch']} |")
    lines.append("")
  with open(os.path.join(OUT, "results.md"), "a") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(OUT, "results.json"), "a") as f:
    f.write(json.dumps({"machine": machine, "results": results}) + "\n")


if __name__ == "__main__":
  main(sys.argv[1:] or ["lm", "resnet", "scan"])
