"""How long a sweep takes to find a config within 0.5 accuracy points of the
best that the full grid finds: the MNIST-1D CNN, learning rate x weight
decay, the 6 x 3 grid against TPE with and without successive-halving
pruning (configs/sweeps/mnist1d_cnn.py).

  .venv/bin/python benchmarks/sweep/measure.py

Each sweep runs with launch/sweep.py in benchmarks/sweep/<variant>/ (its
study.db is kept, its trials' checkpoints are not committed); running the
script again continues any sweep that did not finish, then writes
benchmarks/sweep/results.md. One sampler seed each: a single draw, not a
distribution of sweep times.
"""

import os
import subprocess
import sys

import optuna

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..", "..")
sys.path.insert(0, REPO)

from accel import sweep  # pylint: disable=g-import-not-at-top,wrong-import-position
from accel.sweep import study as study_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

VARIANTS = ("grid", "tpe_unpruned", "tpe")
# The CNN at a quarter of its default budget, so that 54 runs fit in hours.
OVERRIDES = ["--config.total_steps=1000", "--config.eval_every=250",
             "--config.checkpoint_every=1000"]
TOLERANCE = 0.005  # accuracy, absolute (0.5 points)


def _run(variant: str) -> None:
  subprocess.run(
      [sys.executable, os.path.join(REPO, "launch", "sweep.py"),
       "--config", "configs/mnist1d_cnn.py",
       "--sweep", f"configs/sweeps/mnist1d_cnn.py:{variant}",
       "--workdir", os.path.join("benchmarks", "sweep", variant), *OVERRIDES],
      cwd=REPO, check=True)


def _trials(variant: str):
  study = sweep.load_study(os.path.join(HERE, variant))
  return [t for t in study.get_trials() if study_lib.is_finished(t)]


def _time_to(trials, goal: float):
  """(training seconds, trials, steps) until the first complete trial at or
  above `goal`, in the order the sweep ran them; None if none reaches it."""
  seconds = steps = 0.0
  for i, t in enumerate(sorted(trials, key=lambda t: t.number)):
    seconds += t.user_attrs.get(study_lib.SECONDS, 0.0)
    steps += t.user_attrs.get(study_lib.STEPS, 0)
    if t.state == optuna.trial.TrialState.COMPLETE and t.value >= goal:
      return seconds, i + 1, int(steps)
  return None


def main():
  for variant in VARIANTS:
    _run(variant)
  runs = {v: _trials(v) for v in VARIANTS}
  best = max(t.value for t in runs["grid"]
             if t.state == optuna.trial.TrialState.COMPLETE)
  goal = best - TOLERANCE
  lines = [
      "# Sweep time to a near-best config (MNIST-1D CNN)", "",
      "Command: `.venv/bin/python benchmarks/sweep/measure.py` (the sweeps: "
      "`launch/sweep.py --config configs/mnist1d_cnn.py --sweep "
      "configs/sweeps/mnist1d_cnn.py:VARIANT " + " ".join(OVERRIDES) + "`).",
      "", f"Best test accuracy of the full 6 x 3 grid: {best:.4f}; goal: "
      f"{goal:.4f} (0.5 points below). Seconds are training seconds of the "
      "trials (each a `launch/train.py` run, compile included), summed in "
      "the order the sweep ran them, on this 2-core CPU.", "",
      "| sweep | trials to goal | seconds to goal | steps to goal | best "
      "found | all trials | pruned | seconds, whole sweep |",
      "|---|---|---|---|---|---|---|---|"]
  for variant in VARIANTS:
    trials = runs[variant]
    reached = _time_to(trials, goal)
    complete = [t.value for t in trials
                if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    total = sum(t.user_attrs.get(study_lib.SECONDS, 0.0) for t in trials)
    cells = ([str(reached[1]), f"{reached[0]:.0f}", str(reached[2])]
             if reached else ["not reached"] * 3)
    lines.append(f"| {variant} | " + " | ".join(cells) +
                 f" | {max(complete):.4f} | {len(trials)} | {pruned} | "
                 f"{total:.0f} |")
  text = "\n".join(lines) + "\n"
  with open(os.path.join(HERE, "results.md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main()
