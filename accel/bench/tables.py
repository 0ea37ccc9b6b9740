"""The Markdown tables of a suite's results: time to target per workload
and method, the selection extras, and the wrong-learning-rate table."""

from __future__ import annotations

from typing import Any


def markdown(results: dict[str, Any], baseline: str) -> str:
  lines = [f"| workload | target acc | method | lr | steps to target | "
           f"x {baseline} | train s to target | x {baseline} | "
           "final acc | ms/step |", "|---" * 10 + "|"]
  fmt = lambda s, p: ("not reached" if s["mean"] is None and s["reached"] == 0
                      else f"{s['reached']}/{len(s['values'])} reached"
                      if s["mean"] is None
                      else f"{s['mean']:.{p}f} ± {s['std']:.{p}f}")
  ratio = lambda r: "-" if r is None else f"{r:.2f}"
  for wname, w in results["workloads"].items():
    for mname, s in w["summary"].items():
      lines.append(
          f"| {wname} | {w['target']:.4f} | {mname} | "
          f"{s['learning_rate']:g} | {fmt(s['steps_to_target'], 0)} | "
          f"{ratio(s['steps_to_target_ratio'])} | "
          f"{fmt(s['seconds_to_target'], 2)} | "
          f"{ratio(s['seconds_to_target_ratio'])} | "
          f"{fmt(s['final_accuracy'], 4)} | {s['step_ms']:.2f} |")
  extra = [(w, m, s) for w, wl in results["workloads"].items()
           for m, s in wl["summary"].items()
           if "final_worst_class_accuracy" in s or "irreducible_table_s" in s]
  if extra:
    lines += ["", "| workload | method | steps trained | final worst-class "
              "acc | scoring share of step | irreducible-loss table s |",
              "|---" * 6 + "|"]
    for w, m, s in extra:
      worst = s.get("final_worst_class_accuracy")
      table_s = s.get("irreducible_table_s")
      share = s.get("scoring_share_of_step")
      lines.append(f"| {w} | {m} | {s['total_steps']} | "
                   f"{fmt(worst, 4) if worst else '-'} | "
                   f"{'-' if share is None else f'{100 * share:.0f}%'} | "
                   f"{'-' if table_s is None else f'{table_s:.1f}'} |")
  sens = [(w, m, s) for w, wl in results["workloads"].items()
          for m, s in wl["summary"].items() if "sensitivity" in s]
  if sens:
    factors = list(sens[0][2]["sensitivity"])
    lines += ["", "Wrong learning rate: each method at its tuned value "
              "times a factor (final accuracy; seeds reaching the target).",
              "", "| workload | method | tuned lr | " + " | ".join(
                  f"x{f}: final acc | x{f}: reached" for f in factors)
              + " |", "|---" * (3 + 2 * len(factors)) + "|"]
    for w, m, s in sens:
      cells = []
      for f in factors:
        x = s["sensitivity"][f]
        cells += [fmt(x["final_accuracy"], 4),
                  f"{x['steps_to_target']['reached']}/"
                  f"{len(x['steps_to_target']['values'])}"]
      lines.append(f"| {w} | {m} | {s['learning_rate']:g} | "
                   + " | ".join(cells) + " |")
  return "\n".join(lines)
