"""Adaptive depth: accuracy against the blocks examples use, and what a
batched evaluation costs.

  .venv/bin/python benchmarks/early_exit/measure.py

Trains ResNet-20 on the textures (600 steps, batch 64, pixel noise 1.5,
AdamW 3e-3 cosine) and a 4-layer Transformer on the digits (1,000 steps)
with exit heads after each block (`model.early_exit`), and each without
them, one seed each; then evaluates the early-exit model at a ladder of
thresholds: test accuracy and the mean number of blocks an example used.
The wall-clock of one jitted evaluation pass over the test set (static
shapes: every block runs for every example) is timed for the early-exit
model and for the plain one (median of 5). Writes
benchmarks/early_exit/results.md.
"""

import os
import time

import jax
import numpy as np

from accel import train
from accel.bench import host
from accel.train import build as build_lib
from accel.train import config as config_lib
from accel.train import loop

OUT = os.path.dirname(os.path.abspath(__file__))
THRESHOLDS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


def resnet(early):
  c = config_lib.load_file("configs/textures_resnet.py")
  c.data.noise, c.data.num_test = 1.5, 2000
  c.total_steps, c.batch_size, c.eval_every = 600, 64, 0
  c.optim.warmup_steps = 60
  c.progress_bar = False
  c.model.early_exit = early
  return c


def vit(early):
  c = config_lib.load_file("configs/digits_cnn.py")
  c.model = config_lib.model_section(
      "transformer", width=64, num_layers=4, num_heads=4, mlp_dim=128,
      patch_size=2, early_exit=early)
  c.total_steps, c.eval_every, c.progress_bar = 1000, 0, False
  return c


def eval_seconds(config, state):
  parts = build_lib.build(config)
  loop.evaluate(parts.steps, state, parts.source, config)  # compile
  times = []
  for _ in range(5):
    t0 = time.perf_counter()
    loop.evaluate(parts.steps, state, parts.source, config)
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def one(name, make, workdir):
  lines = [f"{name}:", ""]
  plain = train.run(make(False), os.path.join(workdir, name, "plain"))
  early_cfg = make(True)
  early = train.run(early_cfg, os.path.join(workdir, name, "early"))
  rows = []
  for t in THRESHOLDS:
    c = early_cfg.copy_and_resolve_references()
    c.model.exit_threshold = t
    parts = build_lib.build(c)
    r = loop.evaluate(parts.steps, early["state"], parts.source, c)
    rows.append((t, r["accuracy"], r["mean_blocks"]))
    print(name, t, r, flush=True)
  lines += ["| exit threshold | test accuracy | mean blocks used |",
            "|---|---|---|"]
  lines += [f"| {t:g} | {a:.4f} | {b:.2f} |" for t, a, b in rows]
  c = early_cfg.copy_and_resolve_references()
  c.model.exit_threshold = 0.9
  lines += ["", f"Without exit heads: test accuracy {plain['accuracy']:.4f}.",
            f"One evaluation pass over the test set, jitted, static shapes: "
            f"{eval_seconds(make(False), plain['state']):.3f} s without exit "
            f"heads, {eval_seconds(c, early['state']):.3f} s with them "
            "(threshold 0.9).", ""]
  return lines


def main():
  workdir = "/tmp/accel_early_exit"
  lines = ["`.venv/bin/python benchmarks/early_exit/measure.py`", "",
           host.describe(jax.__version__, jax.devices()[0].device_kind), ""]
  lines += one("resnet20_textures", resnet, workdir)
  lines += one("transformer_digits", vit, workdir)
  with open(os.path.join(OUT, "results.md"), "a") as f:
    f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
