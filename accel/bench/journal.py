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
it belongs to). The numbers of a workload (its target, its ratios, its
timings) are compared only with each other, so a workload's trials all come
from one machine: each machine keeps its own copy of a scope, side by side
in the one file, and continues its own copy. A copy that the launcher found
whole is marked finished (`mark_finished`, a line of its own); from then on
every machine reads that copy, and a trial missing from it (the config
changed) is refused (OtherMachine) rather than mixed in from this machine.
A scope that this machine has no copy of reads another machine's copy
(the largest) while it has the trials asked for; at the first one it lacks,
OtherCopy says so and the caller starts this machine's own copy
(`own_copy`) and runs the scope again from its first trial. (Journals
written before finished copies were marked are read so: their finished
workloads replay whole and get marked.)

A pause file (`pause_path`) holds the suite between trials: while it
exists, no trial starts, so other work on a shared machine does not load
the trials it would otherwise slow down; the time held does not count
against the budget. With `replay_only`, nothing trains: a trial missing from
the copy read raises NotStored.
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


class NotStored(Exception):
  """A trial that a replay-only journal does not hold. `scope`: its scope."""

  def __init__(self, message: str, scope: str | None):
    super().__init__(message)
    self.scope = scope


class OtherMachine(ConfigError):
  """A trial missing from the finished copy of its scope (workload), which
  another machine ran. `scope`, `machine`: that scope and that machine."""

  def __init__(self, message: str, scope: str | None, machine: str | None):
    super().__init__(message)
    self.scope, self.machine = scope, machine


class OtherCopy(Exception):
  """A trial missing from another machine's unfinished copy of its scope,
  which this run was reading: the caller calls `own_copy(scope)` and runs
  the scope again. `scope`, `machine`: that scope and that machine."""

  def __init__(self, message: str, scope: str | None, machine: str | None):
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
  machine in one line (accel.bench.host), stored with every trial; each
  scope is read from one machine's copy (`machine_of`, see the module
  docstring). `replay_only`: train nothing (`run` raises NotStored)."""

  def __init__(self, path: str, budget_s: float | None = None,
               clock: Callable[[], float] | None = None,
               machine: str | None = None, pause_path: str | None = None,
               sleep: Callable[[float], None] = time.sleep,
               log: Callable[[str], None] = print,
               replay_only: bool = False):
    self.path, self.budget_s = path, budget_s or None
    self.machine = machine
    self.pause_path = pause_path
    self.replay_only = replay_only
    self._sleep, self._log = sleep, log
    self._clock = clock or time.monotonic
    self._start = self._clock()
    self.paused_s = 0.0
    # {scope: {machine: {key: record}}}: each machine's copy of each scope.
    self._copies: dict[str | None, dict[str | None, dict[str, Any]]] = {}
    # The machine of each scope's finished copy (the first one marked).
    self._finished: dict[str | None, str | None] = {}
    # The copy this run reads, fixed at a scope's first trial.
    self._reading: dict[str | None, str | None] = {}
    # Hits on trials this process already ran (a sensitivity factor that
    # lands on a grid value).
    self.repeats = 0
    lines = []
    if os.path.exists(path):
      with open(path) as f:
        lines = f.read().splitlines()
    scope = None
    earlier = set()
    for n, line in enumerate(lines, 1):
      if not line.strip():
        continue
      try:
        entry = json.loads(line)
        if "finished" in entry:
          self._finished.setdefault(entry["finished"], entry.get("machine"))
          continue
        k, record = entry["key"], entry["record"]
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
      other = entry.get("machine")
      self._copies.setdefault(scope, {}).setdefault(other, {})[k] = record
      earlier.add((scope, other, k))
    self._earlier = frozenset(earlier)
    self._taken: set[tuple[str | None, str | None, str]] = set()

  @property
  def stored(self) -> int:
    """Trials found from an earlier, unfinished run (every copy's)."""
    return len(self._earlier)

  @property
  def reused(self) -> int:
    """Trials of an earlier process this run has taken (each once)."""
    return len(self._taken)

  def copies(self, scope: str | None) -> dict[str | None, int]:
    """{machine: its stored trials} of each copy of `scope`."""
    return {m: len(c) for m, c in self._copies.get(scope, {}).items()}

  def finished_by(self, scope: str | None) -> str | None:
    """The machine of `scope`'s finished copy; None if none is marked."""
    return self._finished.get(scope)

  def machine_of(self, scope: str | None) -> str | None:
    """The machine whose copy of `scope` this run reads: the finished copy,
    else this machine's, else the largest other one, else this machine."""
    if scope not in self._reading:
      copies = self._copies.get(scope, {})
      if scope in self._finished:
        chosen = self._finished[scope]
      elif self.machine in copies or not copies:
        chosen = self.machine
      else:
        chosen = max(copies, key=lambda m: len(copies[m]))
      self._reading[scope] = chosen
    return self._reading[scope]

  def own_copy(self, scope: str | None) -> None:
    """Reads (and continues) this machine's copy of `scope` from now on; the
    trials taken from another machine's copy of it are given back."""
    self._reading[scope] = self.machine
    self.give_back(scope)

  def give_back(self, scope: str | None) -> None:
    """The trials taken of `scope` no longer count as `reused` (a scope
    that is run again, or not reported)."""
    self._taken = {t for t in self._taken if t[0] != scope}

  def mark_finished(self, scope: str | None) -> None:
    """The caller found the copy it read of `scope` whole: marks it finished
    (once), so that every machine reads it from then on."""
    if scope in self._finished:
      return
    machine = self.machine_of(scope)
    self._finished[scope] = machine
    self._append({"finished": scope, "machine": machine})

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
    """(the stored record of key `k` in the copy of `scope` this run reads,
    True) if it has one; else, where that copy is this machine's, checks
    the pause file and the budget, runs `fn` and stores its result:
    (result as stored, False). Raises OtherMachine or OtherCopy where the
    copy read is another machine's, NotStored where replay_only."""
    machine = self.machine_of(scope)
    copy_ = self._copies.get(scope, {}).get(machine, {})
    if k in copy_:
      if (scope, machine, k) in self._earlier:
        self._taken.add((scope, machine, k))
      else:
        self.repeats += 1
      # A fresh copy: callers annotate the records they get.
      return copy.deepcopy(copy_[k]), True
    if machine != self.machine:
      if scope in self._finished:  # machine_of read the finished copy
        raise OtherMachine(
            f"{self.path!r} holds the finished trials of {scope!r} run on "
            f"{machine!r}, but not {what}; this machine is "
            f"{self.machine!r}, so {what} waits for that machine: their "
            "timings would not compare. Continue there, or delete the "
            "journal to start afresh here.", scope, machine)
      raise OtherCopy(
          f"{what} is not in {machine!r}'s unfinished copy of {scope!r}",
          scope, machine)
    if self.replay_only:
      raise NotStored(f"{what} is not in the journal", scope)
    self.wait_while_paused(what)
    self.check_time(what)
    entry = {"key": k, "what": what, "record": fn(), "scope": scope}
    if self.machine:
      entry["machine"] = self.machine
    line = self._append(entry)
    # The stored form either way, so a resumed run computes on the same
    # values as an uninterrupted one.
    copy_ = self._copies.setdefault(scope, {}).setdefault(self.machine, {})
    copy_[k] = json.loads(line)["record"]
    return copy.deepcopy(copy_[k]), False

  def _append(self, entry: dict[str, Any]) -> str:
    line = json.dumps(entry, default=_plain)
    with open(self.path, "a") as f:
      f.write(line + "\n")
      f.flush()
      os.fsync(f.fileno())
    return line

  def finish(self) -> None:
    """The suite finished: the journal is no longer needed. A replay-only
    journal is only read (a finished suite's, kept in git): it stays."""
    if not self.replay_only and os.path.exists(self.path):
      os.remove(self.path)
