"""The suite journal refuses to mix machines."""

import pytest

from accel.bench import host
from accel.bench import journal
from accel.errors import ConfigError


def test_a_journal_of_another_machine_is_refused(tmp_path):
  path = str(tmp_path / "trials.jsonl")
  here = journal.Journal(path, machine="cpu A")
  here.run("k", "trial", lambda: {"x": 1})
  # The same machine continues; a journal without machine names too.
  assert journal.Journal(path, machine="cpu A").run("k", "t", None) == (
      {"x": 1}, True)
  assert journal.Journal(path).stored == 1
  with pytest.raises(ConfigError, match="holds trials run on 'cpu A'; this "
                     "machine is 'cpu B'"):
    journal.Journal(path, machine="cpu B")


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
