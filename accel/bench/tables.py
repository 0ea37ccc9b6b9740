"""The Markdown tables of a suite's results: time to target per workload
and method, the selection extras, and the wrong-learning-rate table."""

from __future__ import annotations

from typing import Any

from accel.bench import rulesets


def fmt(s, p: int) -> str:
  """Mean ± spread over seeds, or how many seeds reached the target."""
  if s is None:
    return "-"
  if s["mean"] is None:
    return ("not reached" if s["reached"] == 0
            else f"{s['reached']}/{len(s['values'])} reached")
  return f"{s['mean']:.{p}f} ± {s['std']:.{p}f}"


def interval_text(iv, unit: str = "") -> str:
  """A ratio and its interval (accel.bench.intervals), e.g. "0.83x [0.70,
  0.98]" with unit "x"."""
  return "-" if iv is None else (
      f"{iv['ratio']:.2f}{unit} [{iv['low']:.2f}, {iv['high']:.2f}]")


def grid_edge(w: dict[str, Any], method: str) -> str | None:
  """"bottom" or "top" when `method`'s tuned learning rate on workload
  result `w` is the smallest or largest value of its tuning grid (its best
  may lie outside the grid), else None (also for untuned runs and grids
  of fewer than 3 values)."""
  tuned = ((w.get("tuning") or {}).get("methods") or {}).get(method)
  if not tuned:
    return None
  grid = sorted({float(k.rpartition(":")[2]) for k in tuned["grid"]})
  if len(grid) < 3:
    return None
  lr = float(tuned["learning_rate"])
  return "bottom" if lr == grid[0] else "top" if lr == grid[-1] else None


def markdown(results: dict[str, Any], baseline: str) -> str:
  lines = [f"| workload | target acc | method | lr | steps to target | "
           f"x {baseline} | train s to target | x {baseline} [95%] | "
           "train s incl. sweep | final acc | ms/step |",
           "|---" * 11 + "|"]
  ratio = lambda r: "-" if r is None else f"{r:.2f}"
  for wname, w in results["workloads"].items():
    for mname, s in w["summary"].items():
      edge = grid_edge(w, mname)
      lr = f"{s['learning_rate']:g}" + (
          f" {s['schedule']}" if s.get("schedule") else "") + (
              f" ({edge} of grid)" if edge else "")
      iv = rulesets.ratio_interval(w, rulesets.EXTERNAL, mname, baseline)
      lines.append(
          f"| {wname} | {w['target']:.4f} | {mname} | {lr} | "
          f"{fmt(s['steps_to_target'], 0)} | "
          f"{ratio(s['steps_to_target_ratio'])} | "
          f"{fmt(s['seconds_to_target'], 2)} | {interval_text(iv)} | "
          f"{fmt(s.get('seconds_with_sweep'), 1)} | "
          f"{fmt(s['final_accuracy'], 4)} | {s['step_ms']:.2f} |")
  stopped = [f"{w} {m} (at steps {s['stopped_at_steps']} of "
             f"{wl['budget_steps']}, {wl['max_train_s']:g} s)"
             for w, wl in results["workloads"].items()
             for m, s in wl["summary"].items() if s.get("stopped_at_steps")]
  if stopped:
    lines += ["", "Stopped at the workload's maximum runtime (AlgoPerf's; "
              "final acc is the accuracy there): " + "; ".join(stopped)
              + "."]
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


def self_tuning_markdown(results: dict[str, Any], baseline: str
                         ) -> list[str]:
  """The self-tuning ruleset's table (lines; none when not measured)."""
  if not rulesets.has(results, rulesets.SELF_TUNING):
    return []
  lines = ["Self-tuning ruleset: each method once per seed at its library "
           "default learning rate, no sweep; `+sweep` rows add the whole "
           "grid's train seconds to the tuned time to target.", "",
           f"| workload | entry | lr | train s to target | x {baseline} "
           "[95%] | final acc |", "|---" * 6 + "|"]
  for wname, w in results["workloads"].items():
    for e, s in rulesets.entries(w, rulesets.SELF_TUNING).items():
      run = (w.get("self_tuning") or {}).get(e)
      lr = "-" if run is None else f"{run['learning_rate']:g}"
      acc = "-" if run is None else fmt(run["final_accuracy"], 4)
      iv = rulesets.ratio_interval(w, rulesets.SELF_TUNING, e, baseline)
      lines.append(f"| {wname} | {e} | {lr} | {fmt(s, 2)} | "
                   f"{interval_text(iv)} | {acc} |")
  return lines + [""]
