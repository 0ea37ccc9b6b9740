"""Does distillation help a small student? MNIST-1D and the textures, a
larger teacher, the same student trained alone and distilled, each with the
same learning-rate grid.

  .venv/bin/python benchmarks/distill/measure.py [mnist1d|textures ...]

Per task: one teacher run; then the student alone and distilled
(config.distill: temperature 4, alpha 0.9; not tuned) at each rate of the
grid and each seed. Reported: final test accuracy (mean over seeds) per
rate, and the train seconds (compile and the periodic evaluations included,
the teacher's own training not) and steps until a run first reaches the
undistilled student's best mean final accuracy. Runs live in
/tmp/accel_distill/ (a finished one is not trained again); the table goes
to benchmarks/distill/results.md.
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..", "..")
sys.path.insert(0, REPO)

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top,wrong-import-position

from accel import train  # pylint: disable=g-import-not-at-top,wrong-import-position
from accel.sweep import space  # pylint: disable=g-import-not-at-top,wrong-import-position
from accel.train import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = "/tmp/accel_distill"
DISTILL = {"distill.temperature": 4.0, "distill.alpha": 0.9}
TASKS = {
    "mnist1d": dict(
        config="configs/mnist1d_cnn.py",
        common={"total_steps": 1000, "eval_every": 100,
                "checkpoint_every": 1000},
        teacher={"model.channels": (64, 64, 64)},
        student={"model.channels": (8, 8, 8)},
        rates=(1e-3, 3e-3, 1e-2), seeds=(0, 1)),
    "textures": dict(
        config="configs/textures_resnet.py",
        common={"total_steps": 600, "batch_size": 32, "eval_batch_size": 500,
                "data.num_test": 2000, "eval_every": 75,
                "checkpoint_every": 600, "optim.warmup_steps": 60},
        teacher={"optim.learning_rate": 3e-2},  # ResNet-20, the grid's best
        student={"model.stage_channels": (8, 16, 32),
                 "model.blocks_per_stage": 1},  # ResNet-8, narrow
        rates=(3e-3, 1e-2, 3e-2), seeds=(0,)),
}


def _run(task: dict, values: dict, workdir: str) -> dict:
  """Trains (or reads back) one run: final accuracy and its eval curve as
  [(step, seconds since the run started, accuracy)]."""
  done = os.path.join(workdir, "measured.json")
  if os.path.exists(done):
    with open(done) as f:
      return json.load(f)
  config = space.apply(config_lib.load_file(task["config"]),
                       {**task["common"], **values})
  config.progress_bar = False
  start = time.time()
  result = train.run(config, workdir)
  events = event_accumulator.EventAccumulator(
      os.path.join(workdir, "tensorboard"))
  events.Reload()
  curve = [(e.step, e.wall_time - start, e.value)
           for e in events.Scalars("eval/accuracy")]
  out = {"accuracy": result["accuracy"], "curve": curve,
         "seconds": time.time() - start}
  with open(done, "w") as f:
    json.dump(out, f)
  return out


def _reach(curve, goal):
  for step, seconds, acc in curve:
    if acc >= goal:
      return step, seconds
  return None


def measure(name: str) -> list[str]:
  task = TASKS[name]
  teacher_dir = os.path.join(ROOT, name, "teacher")
  teacher = _run(task, task["teacher"], teacher_dir)
  runs = {}
  for mode in ("alone", "distilled"):
    for lr in task["rates"]:
      for seed in task["seeds"]:
        values = {**task["student"], "optim.learning_rate": lr, "seed": seed}
        if mode == "distilled":
          values.update({**DISTILL, "distill.teacher": teacher_dir})
        runs[mode, lr, seed] = _run(
            task, values, os.path.join(ROOT, name, f"{mode}_{lr}_{seed}"))
  mean = {(m, lr): np.mean([runs[m, lr, s]["accuracy"] for s in task["seeds"]])
          for m in ("alone", "distilled") for lr in task["rates"]}
  goal = max(mean["alone", lr] for lr in task["rates"])
  lines = [f"## {name}", "",
           f"Teacher: final test accuracy {teacher['accuracy']:.4f}, trained "
           f"in {teacher['seconds']:.0f} s. Student overrides: "
           f"{task['student']}; common: {task['common']}; seeds "
           f"{list(task['seeds'])}. Goal: the student alone's best mean final"
           f" accuracy, {goal:.4f}.", "",
           "| student | rate | final accuracy (mean) | per seed | steps to goal"
           " | seconds to goal | seconds, whole run |",
           "|---|---|---|---|---|---|---|"]
  for mode in ("alone", "distilled"):
    for lr in task["rates"]:
      per_seed = [runs[mode, lr, s] for s in task["seeds"]]
      reached = [_reach(r["curve"], goal) for r in per_seed]
      steps = ", ".join(str(r[0]) if r else "-" for r in reached)
      secs = ", ".join(f"{r[1]:.0f}" if r else "-" for r in reached)
      lines.append(
          f"| {mode} | {lr:g} | {mean[mode, lr]:.4f} | "
          + ", ".join(f"{r['accuracy']:.4f}" for r in per_seed)
          + f" | {steps} | {secs} | "
          + ", ".join(f"{r['seconds']:.0f}" for r in per_seed) + " |")
  return lines + [""]


def main(argv):
  names = argv[1:] or list(TASKS)
  lines = ["# Knowledge distillation: a small student, alone and distilled",
           "", "Command: `.venv/bin/python benchmarks/distill/measure.py "
           + " ".join(names) + "` on this 2-core CPU.", ""]
  for name in names:
    lines += measure(name)
  text = "\n".join(lines)
  with open(os.path.join(HERE, "results.md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main(sys.argv)
