"""A resumable hyperparameter sweep (Optuna, SQLite storage in the workdir).

  python launch/sweep.py --config configs/mnist1d_cnn.py \
      --sweep configs/sweeps/mnist1d_cnn.py --workdir runs/sweep
  python launch/sweep.py ... --trials 40 --time_budget_minutes 60
  python launch/sweep.py --workdir runs/sweep --report

The sweep file's `get_sweep()` returns an accel.sweep.Sweep: the space over
config keys, the metric and its direction, sampler, pruner and trial count.
Each trial is an ordinary run in `W/trials/<n>/`; a pruned one stops at
once. Running the same command again (after a kill, too) continues without
repeating a finished trial; an interrupted trial resumes from its
checkpoint. At the end, or with `--report`, `W/report.md` gets the best
config as a `launch/train.py` command, a table of trials, and the plots.
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from accel import sweep
from accel.errors import ConfigError
from accel.sweep import summary
from accel.train import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The base config of every trial, `file.py[:variant]`; "
    "--config.KEY=VALUE overrides apply to all trials.", lock_config=True)
_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file with get_sweep().")
_WORKDIR = flags.DEFINE_string("workdir", None, "The sweep's study.db, "
                               "trials/<n>/ and report.")
_TRIALS = flags.DEFINE_integer("trials", None, "Finished trials to reach "
                               "(default: the sweep file's).")
_BUDGET = flags.DEFINE_float("time_budget_minutes", None, "Start no new "
                             "trial once the finished ones trained this long"
                             " (summed over invocations).")
_REPORT = flags.DEFINE_bool("report", False, "Only write the report of the "
                            "sweep in --workdir.")
flags.mark_flags_as_required(["workdir"])

_ORIGIN = "origin.json"  # how the sweep was started: for the report's command


def _origin(workdir: str) -> tuple[str, list[str]]:
  path = os.path.join(workdir, _ORIGIN)
  if not os.path.exists(path):
    return "CONFIG", []
  with open(path) as f:
    saved = json.load(f)
  return saved["config"], saved["overrides"]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  workdir = _WORKDIR.value
  if not _REPORT.value:
    if _CONFIG.value is None or _SWEEP.value is None:
      raise ConfigError("--config and --sweep are required (unless "
                        "--report).")
    found = sweep.load(_SWEEP.value)
    budget = (None if _BUDGET.value is None else 60 * _BUDGET.value)
    overrides = [a for a in sys.argv[1:] if a.startswith("--config.")]
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, _ORIGIN), "w") as f:
      json.dump({"config": config_flags.get_config_filename(
          flags.FLAGS["config"]), "overrides": overrides}, f)
    study = sweep.run(_CONFIG.value, found, workdir,
                      identity=sweep.sweep_identity(found, _CONFIG.value),
                      trials=_TRIALS.value, time_budget_s=budget)
  else:
    study = sweep.load_study(workdir)
  config_arg, overrides = _origin(workdir)
  print(summary.write(study, workdir, config_arg, overrides))


if __name__ == "__main__":
  cli.run(main)
