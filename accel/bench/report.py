"""Figures and the written report of a benchmark suite's results.json.

  curves         per workload, test accuracy against train seconds and
                 against steps, each method at its chosen learning rate
                 (mean over seeds), with the target;
  profile        AlgoPerf-style performance profiles, one per ruleset the
                 run measured (accel.bench.rulesets, .profiles), with each
                 entry's score;
  benchmarks_md  the report: machine, command, date, load, the
                 conclusions (computed from the numbers and their
                 intervals: which method is faster or slower than the
                 baseline where, per ruleset, held-out workloads first),
                 the scores, the tables, memory, figures;
                 then, optionally, the same conclusions and table of other
                 suite runs (each with its own command, date and machine),
                 read from their results.json.
"""

from __future__ import annotations

import json
import os
from typing import Any

import matplotlib
from matplotlib import figure
import numpy as np

from accel.bench import intervals
from accel.bench import profiles
from accel.bench import rulesets
from accel.bench import split
from accel.bench import tables
from accel.errors import ConfigError
from accel.errors import MissingFileError

# Distinct colours for up to 20 methods (the default cycle repeats after 10).
_CYCLE = matplotlib.cycler(color=matplotlib.colormaps["tab20"].colors)


def _figure(**kwargs) -> figure.Figure:
  """A figure of its own (no pyplot state, no global backend: savefig
  renders with Agg), so importing this module changes nothing for a user
  who plots."""
  return figure.Figure(**kwargs)


def _chosen_runs(workload: dict[str, Any], method: str) -> list[dict]:
  lr = workload["summary"][method]["learning_rate"]
  return workload["trials"][method][str(lr)]


def _mean_curve(runs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
  n = min(len(r["curve"]) for r in runs)
  x = np.mean([[p[key] for p in r["curve"][:n]] for r in runs], axis=0)
  y = np.mean([[p["accuracy"] for p in r["curve"][:n]] for r in runs], axis=0)
  return x, y


def curves(results: dict[str, Any], outdir: str) -> list[str]:
  """One PNG per workload; returns their paths."""
  paths = []
  for wname, w in results["workloads"].items():
    fig = _figure(figsize=(11, 4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax in axes:
      ax.set_prop_cycle(_CYCLE)
    for method in w["summary"]:
      runs = _chosen_runs(w, method)
      for ax, key in zip(axes, ("train_s", "step")):
        x, y = _mean_curve(runs, key)
        ax.plot(x, y, marker=".", label=method)
    for ax, xlabel in zip(axes, ("train seconds (mean over seeds)",
                                 "steps")):
      ax.axhline(w["target"], color="gray", linestyle="--", linewidth=1)
      ax.set_xlabel(xlabel)
      ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{wname}: target {w['target']:.4f} (dashed)")
    fig.tight_layout()
    path = os.path.join(outdir, f"curves_{wname}.png")
    fig.savefig(path, dpi=110)
    paths.append(path)
  return paths


def profile(results: dict[str, Any], path: str) -> str:
  """The performance profile of each ruleset the run measured, side by
  side (accel.bench.profiles), with each entry's score in its label."""
  taus = np.linspace(1.0, profiles.TAU_MAX, 301)
  shown = [r for r in (rulesets.EXTERNAL, rulesets.SELF_TUNING)
           if rulesets.has(results, r)]
  fig = _figure(figsize=(6 * len(shown), 4))
  axes = np.atleast_1d(fig.subplots(1, len(shown), sharey=True))
  for ax, ruleset in zip(axes, shown):
    ax.set_prop_cycle(_CYCLE)
    times = rulesets.times(results, ruleset)
    score = profiles.scores(times)
    for m, share in profiles.curves(times, taus).items():
      ax.step(taus, share, where="post", label=f"{m} ({score[m]:.2f})")
    ax.set_xlabel("tau: time to target / fastest entry's")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{ruleset} (score in brackets)")
  axes[0].set_ylabel("share of workloads")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  return path


def conclusions(results: dict[str, Any], baseline: str | None,
                ruleset: str = rulesets.EXTERNAL,
                family: str | None = None) -> list[str]:
  """One line per entry of `ruleset` but the baseline: where its train
  seconds to target are below the baseline's (the whole 95% interval of
  the ratio below 1), where it ties (the interval holds 1), where it is
  slower, where it reaches a target the baseline misses on some seed, and
  where it misses the target on some seed. With `family`, only that
  family's workloads (accel.bench.split). With `baseline` None, each
  workload's best tuned peer (rulesets.best_peer) is the baseline, named
  in each ratio, and the peers get no line."""
  lines = []
  works = {wname: w for wname, w in results["workloads"].items()
           if family is None or rulesets.family_of(w) == family}
  by_workload = {wname: rulesets.entries(w, ruleset)
                 for wname, w in works.items()}
  refs = {wname: baseline or rulesets.best_peer(w)
          for wname, w in works.items()}
  names = list(dict.fromkeys(e for es in by_workload.values() for e in es))
  for m in names:
    if m == baseline or (baseline is None and m in rulesets.PEERS):
      continue
    faster, tie, slower, missed, only, skipped = [], [], [], [], [], []
    for wname, w in works.items():
      s = by_workload[wname].get(m)
      if s is None:
        if m in w.get("excluded", {}):
          skipped.append(f"{wname} ({w['excluded'][m]})")
        continue
      if s["mean"] is None:
        missed.append(f"{wname} ({s['reached']}/{len(s['values'])} seeds)")
        continue
      iv = (None if refs[wname] is None else
            rulesets.ratio_interval(w, ruleset, m, refs[wname]))
      if iv is None:  # the baseline missed on some seed; it did not
        only.append(f"{wname} ({s['mean']:.2f} s)")
        continue
      vs = "" if baseline else f"vs {refs[wname]}: "
      {"faster": faster, "slower": slower, "tie": tie}[
          intervals.verdict(iv)].append(
              f"{wname} ({vs}{tables.interval_text(iv, 'x')})")
    parts = [f"faster on {', '.join(faster)}" if faster else "faster nowhere"]
    if tie:
      parts.append(f"ties on {', '.join(tie)}")
    if slower:
      parts.append(f"slower on {', '.join(slower)}")
    if only:
      parts.append(f"reaches the target on every seed where "
                   f"{baseline or 'every peer'} misses some: "
                   f"{', '.join(only)}")
    if missed:
      parts.append(f"misses the target on {', '.join(missed)}")
    if skipped:
      parts.append(f"not run on {', '.join(skipped)}")
    lines.append(f"- **{m}**: " + "; ".join(parts) + ".")
  return lines


def scores_table(results: dict[str, Any]) -> str:
  """Each ruleset's AlgoPerf-style score per entry: on the held-out
  workloads, the meta-training family and all of them."""
  families = [(split.HELD_OUT, "held out"),
              (split.META_TRAINING, "meta-training family"), (None, "all")]
  present = {rulesets.family_of(w) for w in results["workloads"].values()}
  families = [f for f in families if f[0] is None or f[0] in present]
  rows = ["| ruleset | entry | " + " | ".join(
      f"score, {label}" for _, label in families) + " |",
          "|---" * (2 + len(families)) + "|"]
  for ruleset in (rulesets.EXTERNAL, rulesets.SELF_TUNING):
    if not rulesets.has(results, ruleset):
      continue
    by_family = [profiles.scores(rulesets.times(results, ruleset, f))
                 for f, _ in families]
    for e in by_family[-1]:
      rows.append(f"| {ruleset} | {e} | " + " | ".join(
          f"{sc[e]:.3f}" if e in sc else "-" for sc in by_family) + " |")
  return "\n".join(rows)


def family_lines(results: dict[str, Any]) -> list[str]:
  """Each workload's family and why (accel.bench.split)."""
  out = []
  for wname, w in results["workloads"].items():
    f = w.get("family")
    out.append(f"- {wname}: " + (
        "not classified (this run names no meta-training config)" if not f
        else f"{f['family'].replace('_', ' ')}: {f['reason']}"))
  return out


def overhead_steps(results: dict[str, Any]) -> int:
  """Steps per timing of the run's overhead rows (20 in runs that predate
  the field)."""
  for w in results["workloads"].values():
    for r in w.get("update_overhead") or []:
      return int(r.get("steps_per_timing", 20))
  return 20


def host_share(step_ms: float, trial_step_ms: float | None) -> float | None:
  """The share of a trial's time per step spent outside the jitted step
  (input pipeline, dispatch, Python): 1 - jitted step / trial step."""
  if not trial_step_ms:
    return None
  return 1.0 - step_ms / trial_step_ms


def update_table(results: dict[str, Any]) -> str:
  rows = ["| workload | method | update ms | x baseline | step ms | "
          "x baseline | optimizer state MB | trial ms/step | outside the "
          "jitted step |", "|---" * 9 + "|"]
  for wname, w in results["workloads"].items():
    for r in w.get("update_overhead") or []:
      trial = w.get("summary", {}).get(r["method"], {}).get("step_ms")
      share = host_share(r["step_ms"], trial)
      rows.append(f"| {wname} | {r['method']} | {r['update_ms']:.3f} | "
                  f"{r['update_ratio']:.2f} | {r['step_ms']:.3f} | "
                  f"{r['step_ratio']:.2f} | {r['state_bytes'] / 2**20:.2f} | "
                  f"{'-' if trial is None else f'{trial:.3f}'} | "
                  f"{'-' if share is None else f'{share:.0%}'} |")
  return "\n".join(rows) if len(rows) > 2 else "(not measured in this run)"


def memory_table(results: dict[str, Any]) -> str:
  rows = ["| workload | method | examples to target | x baseline | "
          "GFLOP per step | MFU | compiled step MB | process peak RSS MB | "
          "load avg (1 min) |", "|---" * 9 + "|"]
  fmt = lambda v, p=1: "-" if v is None else f"{v:,.{p}f}"
  for wname, w in results["workloads"].items():
    for m, s in w["summary"].items():
      ex = s.get("examples_to_target", {})
      mem = s.get("memory", {})
      flops, mfu = s.get("flops_per_step"), s.get("mfu")
      rows.append(
          f"| {wname} | {m} | {fmt(ex.get('mean'), 0)} | "
          f"{fmt(s.get('examples_to_target_ratio'), 2)} | "
          f"{'-' if flops is None else f'{flops / 1e9:.3f}'} | "
          f"{'-' if mfu is None else f'{mfu:.1%}'} | "
          f"{fmt(mem.get('compiled_mb'), 2)} | "
          f"{fmt(mem.get('process_peak_rss_mb'), 0)} | "
          f"{fmt(s.get('load_avg_1m'), 2)} |")
  return "\n".join(rows)


def _protocol(results: dict[str, Any]) -> str:
  c = results["config"]
  tuning = c.get("tuning_seeds")
  return (
      f"Each method's learning rate was chosen from its grid on tuning "
      f"seed(s) {list(tuning)}; the numbers below come from seeds "
      f"{list(c['seeds'])} at that rate." if tuning else
      f"Each method's learning rate is the grid value that reached the "
      f"target fastest over seeds {list(c['seeds'])}.")


def _run_status(results: dict[str, Any]) -> list[str]:
  """Lines for a run that stopped before its end (time budget, workloads
  left for the machine that finished them, a replay of the journal only)
  or continued an interrupted one (launch/bench.py), and each workload's
  machine where they are not all the run's; none for a plain run."""
  out = []
  if results.get("stopped"):
    out.append(f"- **not finished**: {results['stopped']} "
               "(the same command continues it)")
  machines = {w: r["machine"] for w, r in results["workloads"].items()
              if r.get("machine")}
  if set(machines.values()) - {results["machine"]}:
    out.append("- machines (each workload's trials all ran on one): " +
               "; ".join(f"{w} on {m}" for w, m in machines.items()))
  if results.get("carried_from_earlier_invocation"):
    out.append("- " + ", ".join(results["carried_from_earlier_invocation"])
               + ": the previous invocation's results (same config, from "
               "the same journal's trials); this one stopped before it "
               "replayed them")
  if results.get("trials_from_earlier_run"):
    out.append(f"- continued an interrupted run: "
               f"{results['trials_from_earlier_run']} trials, timings "
               "included, were measured by the earlier process")
  return out


def _figure_links(paths: list[str], root: str) -> list[str]:
  return [f"![{os.path.basename(p)}]({os.path.relpath(p, root)})"
          for p in paths]


def _interval_note(baseline: str) -> str:
  return (f"Against `{baseline}` in train seconds to target, each ratio "
          "with its 95% bootstrap interval (over seeds, and over the "
          "interleaved step-time rounds where both methods were timed: "
          "accel.bench.intervals). A ratio whose interval holds 1 is a tie, "
          "never a win.")


def grid_edges(results: dict[str, Any]) -> list[str]:
  """A paragraph naming every method whose tuned rate is at the edge of
  its grid (tables.grid_edge); none when there is none."""
  edges = [f"{m} on {wname} ({tables.grid_edge(w, m)}: "
           f"{w['summary'][m]['learning_rate']:g})"
           for wname, w in results["workloads"].items()
           for m in w["summary"] if tables.grid_edge(w, m)]
  return ["Tuned at the edge of its grid, so its best rate may lie outside "
          "it (that row may be under-tuned): " + ", ".join(edges) + ".",
          ""] if edges else []


def conclusion_sections(results: dict[str, Any], baseline: str,
                        level: str = "###") -> list[str]:
  """The conclusions of each ruleset the run measured; where the run
  classified its workloads, the held-out ones first (those are the
  conclusions; the meta-training family's follow)."""
  classified = any(rulesets.family_of(w)
                   for w in results["workloads"].values())
  families = ([(split.HELD_OUT, "held-out workloads"),
               (split.META_TRAINING, "meta-training family (seen in "
                "meta-training: not evidence)")] if classified
              else [(None, "all workloads")])
  out = [_interval_note(baseline), "", *grid_edges(results)]
  for ruleset in (rulesets.EXTERNAL, rulesets.SELF_TUNING):
    if not rulesets.has(results, ruleset):
      continue
    for family, label in families:
      if classified and not any(rulesets.family_of(w) == family for w in
                                results["workloads"].values()):
        out += [f"{level} {ruleset}, {label}", "", "(none in this run)", ""]
        continue
      out += [f"{level} {ruleset}, {label}", "",
              *conclusions(results, baseline, ruleset, family), ""]
      if ruleset == rulesets.EXTERNAL:
        out += [f"{level} {ruleset} against the best tuned peer, {label}",
                "", f"Each workload's baseline here is the fastest of "
                f"{', '.join(rulesets.PEERS)} (tuned), named in each ratio: "
                f"the bar accel's methods must clear.", "",
                *conclusions(results, None, ruleset, family), ""]
  return out


def other_run_md(results: dict[str, Any], workdir: str, root: str) -> str:
  """A section for another suite run (its results.json in `workdir`): its
  command, date and machine, conclusions, table and the figures found in
  `workdir`."""
  baseline = results["config"]["baseline"]
  figures = sorted(
      os.path.join(workdir, f) for f in os.listdir(workdir)
      if f.endswith(".png"))
  out = [
      f"## {', '.join(results['workloads'])} ({results['date'][:10]})",
      "",
      f"- command: `{results['command']}`",
      f"- date: {results['date']}",
      f"- machine: {results['machine']}",
      f"- results: `{os.path.relpath(workdir, root)}/results.json`",
      *_run_status(results),
      "",
      _protocol(results),
      "",
      *conclusion_sections(results, baseline, "###"),
      tables.markdown(results, baseline),
      "",
      *_figure_links(figures, root),
  ]
  return "\n".join(out) + "\n"


def _spread(wname: str, mine: dict[str, Any], other: dict[str, Any],
            than: str) -> str:
  """One workload's line: `mine`'s mean seconds to target over `other`'s
  (rows with seconds_ and steps_to_target stats), and whether their steps
  to target were the same."""
  a, b = mine["seconds_to_target"], other["seconds_to_target"]
  same = mine["steps_to_target"]["values"] == other["steps_to_target"][
      "values"]
  ratio = (f"{a['mean'] / b['mean']:.2f}x {than} seconds"
           if a["mean"] and b["mean"] else "a target missed in one run")
  return (f"- {wname}: {ratio}; steps to target " + (
      "identical" if same else f"{mine['steps_to_target']['values']} "
      f"against {other['steps_to_target']['values']}"))


def run_to_run(results: dict[str, Any], earlier: dict[str, Any],
               baseline: str) -> list[str]:
  """How the baseline moved between two runs of the same suite config: per
  workload, its mean seconds to target here over there, and whether its
  steps to target were the same."""
  out = []
  for wname, w in results["workloads"].items():
    other = earlier["workloads"].get(wname, {}).get("summary", {}).get(
        baseline)
    mine = w["summary"].get(baseline)
    if other and mine:
      out.append(_spread(wname, mine, other, "the earlier run's"))
  return out


def within_run(results: dict[str, Any], baseline: str) -> list[str]:
  """How the baseline's reported trials moved when the run trained them a
  second time, at the end of each workload (suite `repeat_baseline`)."""
  return [_spread(wname, w["summary"][baseline]["repeat"],
                  w["summary"][baseline], "the first time's")
          for wname, w in results["workloads"].items()
          if "repeat" in w["summary"].get(baseline, {})]


def _repeats(results, others, baseline) -> list[str]:
  """The baseline's run-to-run spread: its repeat within this run, and a
  section for each other run of the very same suite config."""
  out = []
  again = within_run(results, baseline)
  if again:
    out += [f"## Run-to-run spread of `{baseline}`", "",
            f"Its reported trials (same seeds, same rate) trained again at "
            "the end of each workload: the second time's mean seconds to "
            "target against the first's. The same steps at other seconds "
            "are timing noise that no interval above accounts for.", "",
            *again, ""]
  for other, workdir in others:
    if other.get("config") == results.get("config"):
      out += [f"## Run-to-run spread of `{baseline}`", "",
              f"Against the run of {other['date']} "
              f"({os.path.basename(workdir)}; same suite config, "
              f"{other['machine']}):", "",
              *run_to_run(results, other, baseline), ""]
  return out


def benchmarks_md(results: dict[str, Any], baseline: str,
                  figures: list[str], root: str,
                  others: tuple[tuple[dict[str, Any], str], ...] = ()) -> str:
  """The report as Markdown; figure links are relative to `root`.
  `others`: (results, workdir) of other runs, appended as sections."""
  protocol = _protocol(results)
  load = results.get("load_avg_start"), results.get("load_avg_end")
  steps = overhead_steps(results)
  out = [
      "# Benchmarks",
      "",
      *([f"**{results['config']['description']}**", ""]
        if results["config"].get("description") else []),
      "Generated by the harness (`accel/bench/report.py`); do not edit by "
      "hand.",
      "",
      f"- command: `{results['command']}`",
      f"- date: {results['date']}",
      f"- machine: {results['machine']}",
      f"- load average (1, 5, 15 min) at start {_triple(load[0])}, at end "
      f"{_triple(load[1])}",
      *_run_status(results),
      "",
      "Time to target: train seconds (input pipeline, steps and any scoring "
      "pass; compile and evaluation excluded) until the test accuracy first "
      "reaches the workload's target (in the table; the suite config says "
      f"how it is set from the baseline's runs). {protocol}",
      "",
      "## Conclusions",
      "",
      *conclusion_sections(results, baseline),
      "## Rulesets and workloads",
      "",
      "AlgoPerf-style scores: the area under each entry's performance "
      f"profile from tau = 1 to {profiles.TAU_MAX:g}, over "
      f"{profiles.TAU_MAX - 1:g} (1: fastest on every workload; a missed "
      "target counts as never reached). Self-tuning entries: `<method>` is "
      "one run per seed at the library default, `<method>+sweep` the tuned "
      "run's time plus its whole sweep's.",
      "",
      scores_table(results),
      "",
      *family_lines(results),
      "",
      "## Results",
      "",
      tables.markdown(results, baseline),
      "",
      *tables.self_tuning_markdown(results, baseline),
      *_repeats(results, others, baseline),
      "## Optimizer update cost",
      "",
      "The update alone and the whole step of each optimizer at its tuned "
      "learning rate (median of interleaved rounds; update: a jitted "
      f"{steps}-update scan; step: {steps} jitted steps dispatched back to "
      "back; compile excluded). The trials' time per step also counts what "
      "happens outside the jitted step, alike for every method (input "
      "pipeline, dispatch, Python); its share is the last column:",
      "",
      update_table(results),
      "",
      "## Examples forward-passed, FLOPs and memory",
      "",
      "FLOPs per step as XLA's cost analysis counts them for the compiled "
      "step; MFU is those per second of train time (input pipeline "
      "included) over the chip's dense peak for the compute dtype "
      "(accel.bench.flops; none for CPUs).",
      "",
      memory_table(results),
      "",
      "## Figures",
      "",
      *_figure_links(figures, root),
  ]
  if others:
    out += ["", "# Other suite runs", "",
            "The latest stored run of each other suite, as it was recorded "
            "(not rerun by this command).", ""]
    out += [other_run_md(r, d, root) for r, d in others]
  return "\n".join(out) + "\n"


def _triple(values) -> str:
  return "-" if values is None else ", ".join(f"{v:.2f}" for v in values)


def load_results(path: str) -> dict[str, Any]:
  """A suite run's results.json, with a clear error when it is not one."""
  if not os.path.isfile(path):
    raise MissingFileError(f"No suite results at {path!r}: run "
                            "launch/bench.py with that --workdir first.")
  with open(path) as f:
    results = json.load(f)
  missing = {"command", "date", "machine", "config", "workloads"} - set(
      results)
  if missing:
    raise ConfigError(f"{path!r} is not a launch/bench.py results.json: it "
                      f"lacks {sorted(missing)}.")
  return results


def load_other_runs(paths) -> tuple[tuple[dict[str, Any], str], ...]:
  """(results, workdir) of each results.json in `paths`, for `write_all`."""
  return tuple((load_results(p), os.path.dirname(os.path.abspath(p)))
               for p in paths)


def write_all(results: dict[str, Any], baseline: str, workdir: str,
              report_path: str | None = None,
              other_runs: tuple[tuple[dict[str, Any], str], ...] = ()
              ) -> list[str]:
  """Figures into `workdir`; the report to `report_path` when given, with a
  section for each of `other_runs` (load_other_runs). Returns the figure
  paths."""
  figures = curves(results, workdir)
  figures.insert(0, profile(results, os.path.join(workdir, "profile.png")))
  if report_path:
    root = os.path.dirname(os.path.abspath(report_path))
    with open(report_path, "w") as f:
      f.write(benchmarks_md(results, baseline, figures, root, other_runs))
  return figures
