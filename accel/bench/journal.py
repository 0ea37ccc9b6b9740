"""The record of an unfinished suite run: each finished trial as one JSON
line, so an interrupted run (killed, out of its time budget) continues where
it stopped, and the suite's wall-clock budget.

A trial is keyed by its workload and method names and its whole training
config (learning rate and seed included): a rerun with the same key takes
the stored record instead of training again (trials are deterministic; the
stored timings are those of the earlier process). The launcher deletes the
journal once the suite has finished, so a later run of the same command
starts afresh. Code changes are not part of the key: after changing the code
of an interrupted run, delete the journal (the launcher names it).

Each line also names the machine that ran it and its scope (the workload
it belongs to). A scope's trials all come from one machine: the numbers of
a workload (its target, its ratios, its timings) are compared only with
each other, so two machines may share a journal scope by scope, but a
trial of a scope begun on another machine is refused (OtherMachine: its
timings, and on CPUs its step counts, would not compare), not silently
mixed in. The launcher then leaves that workload for its machine and goes
on with the others.

A pause file (`pause_path`) holds the suite between trials: while it
exists, no trial starts, so other work on a shared machine does not load
the trials it would otherwise slow down; the time held does not count
against the budget.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from typing import Any, Callable

import numpy as np

from accel.errors import ConfigError


class OutOfTime(Exception):
  """The suite's time budget ran out before a trial could start."""


class OtherMachine(ConfigError):
  """A trial of a scope (workload) whose stored trials another machine ran.
  `scope`, `machine`: that scope and that machine."""

  def __init__(self, message: str, scope: str | None, machine: str):
    super().__init__(message)
    self.scope, self.machine = scope, machine


# Lines written before scopes were stored: a trial's scope is the first
# word of its description (its workload); the update timings, which end a
# workload, belong to the trial before them.
_LEGACY_TIMINGS = "the optimizer update timings"


def _legacy_scope(what: str, previous: str | None) -> str | None:
  return previous if what == _LEGACY_TIMINGS else what.split(" ", 1)[0]


def _plain(x):
  if isinstance(x, np.generic):
    return x.item()
  if isinstance(x, np.ndarray):
    return x.tolist()
  if hasattr(x, "to_dict"):  # ml_collections.ConfigDict
    return x.to_dict()
  raise TypeError(f"Cannot store {type(x).__name__} {x!r} in the journal.")


def key(*parts) -> str:
  """A stable key for `parts` (names, configs, numbers)."""
  text = json.dumps(parts, sort_keys=True, default=_plain)
  return hashlib.sha256(text.encode()).hexdigest()


class Journal:
  """Finished trials of one suite run, appended to `path` as they finish.

  `budget_s`: wall-clock seconds from construction after which no new trial
  starts (`run` raises OutOfTime); None or 0: no budget. `machine`: this
  machine in one line (accel.bench.host), stored with every trial; a new
  trial of a scope with trials of another machine raises OtherMachine (a
  trial without a scope: of a journal with any)."""

  def __init__(self, path: str, budget_s: float | None = None,
               clock: Callable[[], float] | None = None,
               machine: str | None = None, pause_path: str | None = None,
               sleep: Callable[[float], None] = time.sleep,
               log: Callable[[str], None] = print):
    self.path, self.budget_s = path, budget_s or None
    self.machine = machine
    self.pause_path = pause_path
    self._sleep, self._log = sleep, log
    self._clock = clock or time.monotonic
    self._start = self._clock()
    self.paused_s = 0.0
    self._done: dict[str, dict[str, Any]] = {}
    # The machine of each scope's stored trials.
    self._machines: dict[str | None, str] = {}
    # Hits on trials this process already ran (a sensitivity factor that
    # lands on a grid value).
    self.repeats = 0
    lines = []
    if os.path.exists(path):
      with open(path) as f:
        lines = f.read().splitlines()
    scope = None
    for n, line in enumerate(lines, 1):
      if not line.strip():
        continue
      try:
        entry = json.loads(line)
        self._done[entry["key"]] = entry["record"]
        other = entry.get("machine")
        scope = (entry["scope"] if "scope" in entry
                 else _legacy_scope(entry["what"], scope))
      except (json.JSONDecodeError, KeyError, TypeError) as e:
        # A run killed while writing leaves a cut last line: that trial
        # runs again. A bad line elsewhere is not ours to skip.
        if n == len(lines):
          break
        raise ValueError(
            f"{path!r} line {n} is not a journal entry ({e}): it is not a "
            "launch/bench.py trial journal, or it was edited. Delete it to "
            "start the suite afresh.") from e
      if other:
        first = self._machines.setdefault(scope, other)
        if first != other:
          raise ConfigError(
              f"{path!r} line {n}: scope {scope!r} holds trials of two "
              f"machines, {first!r} and {other!r}; it was edited or "
              "merged. Delete it to start the suite afresh.")
    self._earlier = frozenset(self._done)
    self._taken: set[str] = set()

  @property
  def stored(self) -> int:
    """Trials found from an earlier, unfinished run."""
    return len(self._earlier)

  @property
  def reused(self) -> int:
    """Trials of an earlier process this run has taken (each once)."""
    return len(self._taken)

  def machine_of(self, scope: str | None) -> str | None:
    """The machine that ran `scope`'s stored trials, else this one."""
    return self._machines.get(scope, self.machine)

  def check_machine(self, scope: str | None, what: str) -> None:
    """Raises OtherMachine if another machine began `scope` (None: if
    another machine ran any stored trial)."""
    if not self.machine:
      return
    if scope is None:
      others = self._machines
    else:
      others = {s: m for s, m in self._machines.items() if s == scope}
    for s, other in others.items():
      if other != self.machine:
        raise OtherMachine(
            f"{self.path!r} holds trials of {s!r} run on {other!r}; this "
            f"machine is {self.machine!r}, so {what} waits for that "
            "machine: their timings would not compare. Continue there, or "
            "delete the journal to start afresh here.", s, other)

  def elapsed_s(self) -> float:
    """Seconds since construction, less the time held by the pause file."""
    return self._clock() - self._start - self.paused_s

  def wait_while_paused(self, what: str) -> None:
    """Returns once the pause file is gone (at once without one)."""
    if not self.pause_path or not os.path.exists(self.pause_path):
      return
    self._log(f"Paused before {what}: remove {self.pause_path} to go on.")
    t0 = self._clock()
    while os.path.exists(self.pause_path):
      self._sleep(5.0)
    self.paused_s += self._clock() - t0

  def check_time(self, what: str) -> None:
    """Raises OutOfTime when the budget is spent (before starting `what`)."""
    if self.budget_s is not None and self.elapsed_s() >= self.budget_s:
      raise OutOfTime(
          f"time budget of {self.budget_s / 60:g} min spent "
          f"({self.elapsed_s() / 60:.1f} min) before {what}")

  def run(self, k: str, what: str, fn: Callable[[], Any],
          scope: str | None = None) -> tuple[Any, bool]:
    """(the stored record of key `k`, True) if there is one, else checks
    the machine of `scope` (check_machine) and the budget, runs `fn` and
    stores its result: (result as stored, False)."""
    if k in self._done:
      if k in self._earlier:
        self._taken.add(k)
      else:
        self.repeats += 1
      # A fresh copy: callers annotate the records they get.
      return copy.deepcopy(self._done[k]), True
    self.check_machine(scope, what)
    self.wait_while_paused(what)
    self.check_time(what)
    entry = {"key": k, "what": what, "record": fn()}
    entry["scope"] = scope
    if self.machine:
      entry["machine"] = self.machine
      self._machines.setdefault(scope, self.machine)
    line = json.dumps(entry, default=_plain)
    with open(self.path, "a") as f:
      f.write(line + "\n")
      f.flush()
      os.fsync(f.fileno())
    # The stored form either way, so a resumed run computes on the same
    # values as an uninterrupted one.
    self._done[k] = json.loads(line)["record"]
    return copy.deepcopy(self._done[k]), False

  def finish(self) -> None:
    """The suite finished: the journal is no longer needed."""
    if os.path.exists(self.path):
      os.remove(self.path)
