"""The suite journal keeps each workload's trials to one machine."""

import json

import pytest

from accel.bench import host
from accel.bench import journal
from accel.errors import ConfigError


def test_a_scope_begun_on_another_machine_is_refused(tmp_path):
  path = str(tmp_path / "trials.jsonl")
  here = journal.Journal(path, machine="cpu A")
  here.run("k", "a trial", lambda: {"x": 1}, scope="a")
  # The same machine continues; a journal without machine names too.
  assert journal.Journal(path, machine="cpu A").run(
      "k2", "t", lambda: {"x": 2}, scope="a") == ({"x": 2}, False)
  assert journal.Journal(path).stored == 2
  other = journal.Journal(path, machine="cpu B")
  # Stored trials are served to any machine; new ones of scope a are not.
  assert other.run("k", "t", None, scope="a") == ({"x": 1}, True)
  with pytest.raises(journal.OtherMachine, match="holds trials of 'a' run "
                     "on 'cpu A'; this machine is 'cpu B', so a trial 3 "
                     "waits for that machine") as e:
    other.run("k3", "a trial 3", lambda: {"x": 3}, scope="a")
  assert (e.value.scope, e.value.machine) == ("a", "cpu A")
  # Another scope runs here, and is this machine's from then on.
  assert other.run("k4", "b trial", lambda: {"x": 4}, scope="b")[1] is False
  assert other.machine_of("a") == "cpu A" and other.machine_of("b") == (
      "cpu B") and other.machine_of("c") == "cpu B"
  with pytest.raises(journal.OtherMachine, match="trials of 'b' run on "
                     "'cpu B'"):
    journal.Journal(path, machine="cpu A").run("k5", "b", dict, scope="b")
  # A trial without a scope needs the whole journal to be this machine's.
  with pytest.raises(journal.OtherMachine):
    journal.Journal(path, machine="cpu B").run("k6", "t", dict)


def test_lines_without_scopes_take_their_workload_from_the_description(
    tmp_path):
  # As written before scopes were stored: the update timings end their
  # workload.
  path = tmp_path / "trials.jsonl"
  lines = [("w1 adamw lr=0.1 seed=0", "A"), ("the optimizer update timings",
                                             "A"),
           ("w2 adamw lr=0.1 seed=0", "B")]
  path.write_text("".join(json.dumps({"key": str(i), "what": w, "record": i,
                                      "machine": m}) + "\n"
                          for i, (w, m) in enumerate(lines)))
  j = journal.Journal(str(path), machine="B")
  assert j.machine_of("w1") == "A" and j.machine_of("w2") == "B"
  with pytest.raises(journal.OtherMachine):
    j.run("new", "w1 timings", dict, scope="w1")
  # Two machines in one workload: the file was edited or merged.
  path.write_text(path.read_text() + json.dumps(
      {"key": "9", "what": "w2 nadamw", "record": 9, "machine": "A"}) + "\n")
  with pytest.raises(ConfigError, match="line 4: scope 'w2' holds trials "
                     "of two machines, 'B' and 'A'"):
    journal.Journal(str(path))


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
