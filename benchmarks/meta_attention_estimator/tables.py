"""Prints results.md's two tables from results.json and settle.json.

  python benchmarks/meta_attention_estimator/tables.py
"""

import json
import os

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name):
  with open(os.path.join(_HERE, name)) as f:
    return json.load(f)["rows"]


def signs(rows):
  lines = ["| AdamW peak rate | test acc (AdamW) | trace: thirds 1/2/3 | "
           "one_step: thirds 1/2/3 | probe: thirds 1/2/3 (± s.e.) | "
           "test acc (probe run) |", "|---" * 6 + "|"]
  for lr in sorted({r["lr"] for r in rows}):
    rs = [r for r in rows if r["lr"] == lr]
    mean = lambda k, i: np.mean([r[k][i] for r in rs])  # pylint: disable=cell-var-from-loop
    three = lambda k: " / ".join(f"{mean(k, i):+.3f}" for i in range(3))  # pylint: disable=cell-var-from-loop
    probe = " / ".join(
        f"{mean('probe', i):+.3f} ± "
        f"{np.sqrt(np.mean([r['probe_se'][i] ** 2 for r in rs]) / len(rs)):.3f}"
        for i in range(3))
    lines.append(f"| {lr:g} | {np.mean([r['acc'] for r in rs]):.3f} | "
                 f"{three('trace')} | {three('one_step')} | {probe} | "
                 f"{np.mean([r['probe_acc'] for r in rs]):.3f} |")
  return lines


def _name(r):
  if "direct_kappa" in r:
    return (f"direct, kappa {r['direct_kappa']:g}, steps "
            f"{r['start']}-{r['adapt_steps']}")
  if "level_rate" in r:
    return (f"transform: level kappa {r['level_rate']:g} steps 0-800, "
            f"network hyper_lr {r['hyper_lr']:g}")
  return ("transform defaults, network learns " +
          ("throughout" if r["adapt_steps"] is None else
           f"until step {r['adapt_steps']}"))


def settling(rows):
  lines = ["| meta-update | base peak | effective peak rate at step "
           "200 / 800 / 2000 | test acc |", "|---" * 4 + "|"]
  groups = {}
  for r in rows:
    groups.setdefault((_name(r), r["base"]), []).append(r)
  for (name, base), rs in groups.items():
    eff = " / ".join(
        f"{np.exp(np.mean([np.log(r['effective'][c]) for r in rs])):.2g}"
        for c in ("200", "800", "2000"))
    lines.append(f"| {name} | {base:g} | {eff} | "
                 f"{np.mean([r['acc'] for r in rs]):.3f} |")
  return lines


if __name__ == "__main__":
  print("\n".join(signs(_load("results.json"))))
  print()
  print("\n".join(settling(_load("settle.json"))))
