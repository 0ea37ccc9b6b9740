"""A sweep's report: the best config as a ready command line, a table of
every trial, and Optuna's history, intermediate-value and importance plots
as images. `write(study, workdir, command)` puts them in `W/report.md` and
`W/*.png` and returns the markdown."""

from __future__ import annotations

import ast
import os
import shlex
import warnings
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import optuna  # pylint: disable=g-import-not-at-top
from optuna.visualization import matplotlib as optuna_plots  # pylint: disable=g-import-not-at-top

from accel.sweep import study as study_lib  # pylint: disable=g-import-not-at-top

PLOTS = {"history.png": optuna_plots.plot_optimization_history,
         "intermediate.png": optuna_plots.plot_intermediate_values,
         "importance.png": optuna_plots.plot_param_importances}


def values(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
  """The config values a trial ran with (not Optuna's stored indices)."""
  return {k: ast.literal_eval(v)
          for k, v in trial.user_attrs.get(study_lib.VALUES, {}).items()}


def _flag_value(value) -> str:
  if isinstance(value, (tuple, list)):
    return repr(tuple(value))
  return repr(value) if isinstance(value, float) else str(value)


def command_line(config_arg: str, overrides: list[str],
                 trial: optuna.trial.FrozenTrial, workdir: str) -> str:
  """`python launch/train.py ...` that trains `trial`'s config again."""
  parts = ["python", "launch/train.py", f"--config={config_arg}", *overrides]
  parts += [f"--config.{k}={_flag_value(v)}"
            for k, v in sorted(values(trial).items())]
  parts.append(f"--workdir={workdir}")
  return " ".join(shlex.quote(p) for p in parts)


def _state(t: optuna.trial.FrozenTrial) -> str:
  if t.state == optuna.trial.TrialState.FAIL:
    return "diverged" if study_lib.ERROR in t.user_attrs else "interrupted"
  return t.state.name.lower()


def _value(t: optuna.trial.FrozenTrial) -> str:
  if t.value is not None:
    return f"{t.value:.4f}"
  if t.intermediate_values:
    return f"({t.intermediate_values[max(t.intermediate_values)]:.4f})"
  return "-"


def table(study: optuna.Study) -> str:
  """Every trial as a markdown row, best first; a pruned trial's value is
  its last reported evaluation."""
  trials = study.get_trials(deepcopy=False)
  keys = sorted({k for t in trials for k in values(t)})
  sign = -1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1

  def order(t):
    v = t.value if t.value is not None else (
        t.intermediate_values[max(t.intermediate_values)]
        if t.intermediate_values else None)
    return (_state(t) != "complete", v is None, sign * (v or 0.0))

  head = ["trial", "state", "value", "steps", "seconds", "dir", *keys]
  rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for t in sorted(trials, key=order):
    vals = values(t)
    cells = [str(t.number), _state(t), _value(t),
             str(t.user_attrs.get(study_lib.STEPS,
                                  max(t.intermediate_values, default="-"))),
             f"{t.user_attrs.get(study_lib.SECONDS, 0.0):.1f}",
             t.user_attrs.get(study_lib.WORKDIR, "-"),
             *(_flag_value(vals[k]) if k in vals else "-" for k in keys)]
    rows.append("| " + " | ".join(cells) + " |")
  return "\n".join(rows)


def plots(study: optuna.Study, workdir: str) -> dict[str, str]:
  """{file: what happened}: each plot saved, or why it could not be."""
  out = {}
  for name, plot in PLOTS.items():
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # Optuna marks these experimental
      try:
        axes = plot(study)
      except (ValueError, RuntimeError) as e:
        out[name] = f"not drawn: {e}"
        continue
    figure = getattr(axes, "figure", None) or axes.flat[0].figure
    figure.set_size_inches(8, 5)
    figure.tight_layout()
    figure.savefig(os.path.join(workdir, name), dpi=100)
    plt.close(figure)
    out[name] = "saved"
  return out


def write(study: optuna.Study, workdir: str, config_arg: str,
          overrides: list[str]) -> str:
  """W/report.md and the plots; returns the markdown."""
  done = study_lib.progress(study)
  lines = [f"# Sweep in {workdir}", "",
           f"{done.finished} finished trials, {done.seconds / 60:.1f} min of "
           "training.", ""]
  complete = [t for t in study.get_trials(deepcopy=False)
              if t.state == optuna.trial.TrialState.COMPLETE]
  if complete:
    best = study.best_trial
    lines += [f"Best: trial {best.number}, value {best.value:.4f}. "
              "To train it again:", "",
              "    " + command_line(config_arg, overrides, best,
                                    "runs/sweep_best"), ""]
  else:
    lines += ["No trial has completed yet.", ""]
  lines += [table(study), ""]
  if len(complete) >= 2:
    for name, what in plots(study, workdir).items():
      lines.append(f"- {name}: {what}")
  else:
    lines.append("- plots: drawn once two trials have completed")
  text = "\n".join(lines) + "\n"
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write(text)
  return text
