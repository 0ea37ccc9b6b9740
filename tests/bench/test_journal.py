"""The suite journal keeps each workload's trials to one machine: each
machine its own copy, and the first copy finished for all."""

import json
import os

import pytest

from accel.bench import host
from accel.bench import journal


def test_each_machine_continues_its_own_copy_of_a_scope(tmp_path):
  path = str(tmp_path / "trials.jsonl")
  a = journal.Journal(path, machine="cpu A")
  a.run("k1", "a trial 1", lambda: {"x": "A1"}, scope="a")
  a.run("k2", "a trial 2", lambda: {"x": "A2"}, scope="a")
  # B has no copy of a: it reads A's while A's has the trials asked for.
  b = journal.Journal(path, machine="cpu B")
  assert b.machine_of("a") == "cpu A" and b.copies("a") == {"cpu A": 2}
  assert b.run("k1", "t", None, scope="a") == ({"x": "A1"}, True)
  assert b.reused == 1
  with pytest.raises(journal.OtherCopy, match="a trial 3 is not in 'cpu "
                     "A''s unfinished copy of 'a'") as e:
    b.run("k3", "a trial 3", lambda: {"x": "B3"}, scope="a")
  assert (e.value.scope, e.value.machine) == ("a", "cpu A")
  # Its own copy from then on, from the first trial; A's is given back.
  b.own_copy("a")
  assert b.reused == 0 and b.machine_of("a") == "cpu B"
  assert b.run("k1", "a trial 1", lambda: {"x": "B1"}, scope="a") == (
      {"x": "B1"}, False)
  assert b.run("k2", "other", lambda: {"x": "B2"}, scope="b")[1] is False
  # A continues its own copy; the two are kept apart in the one file.
  a = journal.Journal(path, machine="cpu A")
  assert a.copies("a") == {"cpu A": 2, "cpu B": 1} and a.stored == 4
  assert a.machine_of("a") == "cpu A" and a.finished_by("a") is None
  assert a.run("k1", "t", None, scope="a") == ({"x": "A1"}, True)
  assert a.run("k3", "a trial 3", lambda: {"x": "A3"}, scope="a")[1] is False
  a.mark_finished("a")
  a.mark_finished("a")  # once
  with open(path) as f:
    assert sum('"finished"' in line for line in f) == 1
  # A finished copy is every machine's, B's own copy included.
  b = journal.Journal(path, machine="cpu B")
  assert b.finished_by("a") == "cpu A" and b.machine_of("a") == "cpu A"
  assert b.run("k1", "t", None, scope="a") == ({"x": "A1"}, True)
  # A trial it lacks (the config changed) waits for A, not mixed in here.
  with pytest.raises(journal.OtherMachine, match="holds the finished trials "
                     "of 'a' run on 'cpu A', but not a trial 4; this "
                     "machine is 'cpu B', so a trial 4 waits") as e:
    b.run("k4", "a trial 4", dict, scope="a")
  assert (e.value.scope, e.value.machine) == ("a", "cpu A")
  # Scope b is B's alone: A reads it, and starts its own at a new trial.
  a = journal.Journal(path, machine="cpu A")
  assert a.machine_of("b") == "cpu B"
  with pytest.raises(journal.OtherCopy):
    a.run("k5", "b trial", dict, scope="b")


def test_a_replay_only_journal_trains_nothing(tmp_path):
  path = str(tmp_path / "trials.jsonl")
  journal.Journal(path, machine="A").run("k", "t", lambda: 1, scope="w")
  replay = journal.Journal(path, machine="A", replay_only=True)
  assert replay.run("k", "t", None, scope="w") == (1, True)

  def train():
    raise AssertionError("trained")
  with pytest.raises(journal.NotStored, match="w trial 2 is not in the "
                     "journal") as e:
    replay.run("k2", "w trial 2", train, scope="w")
  assert e.value.scope == "w"
  replay.finish()  # only read: it stays
  assert os.path.exists(path)
  journal.Journal(path, machine="A").finish()
  assert not os.path.exists(path)


def test_lines_without_scopes_take_their_workload_from_the_description(
    tmp_path):
  # As written before scopes were stored: the update timings end their
  # workload.
  path = tmp_path / "trials.jsonl"
  lines = [("w1 adamw lr=0.1 seed=0", "A"), ("the optimizer update timings",
                                             "A"),
           ("w2 adamw lr=0.1 seed=0", "B"), ("w2 nadamw lr=0.1 seed=0", "A")]
  path.write_text("".join(json.dumps({"key": str(i), "what": w, "record": i,
                                      "machine": m}) + "\n"
                          for i, (w, m) in enumerate(lines)))
  j = journal.Journal(str(path), machine="B")
  assert j.copies("w1") == {"A": 2} and j.machine_of("w1") == "A"
  assert j.copies("w2") == {"B": 1, "A": 1} and j.machine_of("w2") == "B"
  assert j.run("1", "t", None, scope="w1") == (1, True)
  with pytest.raises(journal.OtherCopy):
    j.run("new", "w1 timings", dict, scope="w1")


def test_host_names_the_cpu():
  line = host.describe("0.1", "cpu")
  assert host.cpu_model() in line and line.endswith("jax 0.1 on cpu")


def test_host_tells_cpu_generations_apart(tmp_path):
  # Two virtual machines that both call themselves "AMD EPYC".
  def info(family, model):
    path = tmp_path / f"cpuinfo_{family}_{model}"
    path.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family"
                    f"\t: {family}\nmodel\t\t: {model}\nmodel name\t: AMD "
                    f"EPYC\nstepping\t: 1\n\nprocessor\t: 1\nmodel name\t: "
                    "other\n")
    return str(path)
  zen4, zen2 = host.cpu_model(info(25, 17)), host.cpu_model(info(23, 49))
  assert zen4 == "AMD EPYC (cpu family 25, model 17, stepping 1)"
  assert zen2 != zen4


def test_a_pause_file_holds_the_next_trial_and_its_time_is_not_spent(
    tmp_path):
  pause = tmp_path / "PAUSE"
  pause.touch()
  now = [0.0]

  def sleep(seconds):  # the pause ends after two waits of 5 s
    now[0] += seconds
    if now[0] >= 10:
      pause.unlink()
  said = []
  j = journal.Journal(str(tmp_path / "trials.jsonl"), budget_s=8,
                      clock=lambda: now[0], pause_path=str(pause),
                      sleep=sleep, log=said.append)
  assert j.run("k", "trial 1", lambda: {"x": 1}) == ({"x": 1}, False)
  assert said == [f"Paused before trial 1: remove {pause} to go on."]
  # 10 s held, none of it spent: the 8 s budget still allows a trial.
  assert j.paused_s == 10 and j.elapsed_s() == 0
  assert j.run("k2", "trial 2", lambda: {"x": 2}) == ({"x": 2}, False)
