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
