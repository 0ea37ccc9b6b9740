"""Per-step cost of accel's optimizers against AdamW on the benchmark models.

  python launch/bench_overhead.py --out benchmarks/optimizer_overhead

writes `<out>.json` and `<out>.md`: update-alone and whole-step times (median
of interleaved rounds, compile excluded), optimizer state bytes, and ratios
to AdamW, for each workload (a training config's model, data, batch size).
"""

import datetime
import json
import os
import platform
import sys

from absl import flags

from accel.bench import overhead
from accel.bench import suite
from accel.bench import trial_configs
from accel.train import cli
from accel.train import config as config_lib

# The checkout's configs/, next to this binary.
_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                           "configs")
_WORKLOADS = flags.DEFINE_list(
    "workloads", ["mnist1d_mlp", "mnist1d_cnn", "digits_cnn",
                  "sequence_transformer", "lm_transformer"],
    "Config names in configs/ whose model, data and batch size to time.")
_METHODS = flags.DEFINE_list(
    "methods", ["adamw", "gradient_transformer"],
    "Optimizer names from the factory, each optionally with options "
    "(`meta_attention_adamw:update_every=4`); the first is the baseline.")
_STEPS = flags.DEFINE_integer(
    "steps", suite.OVERHEAD_STEPS, "Steps per timing: a jitted scan of "
    "updates, and as many jitted train steps dispatched back to back (the "
    "benchmark suites' count by default).")
_ROUNDS = flags.DEFINE_integer("rounds", 7, "Interleaved timing rounds.")
_OUT = flags.DEFINE_string("out", "benchmarks/optimizer_overhead",
                           "Output path without extension.")


def _number(text: str):
  """An option's value: True/False, an int, a float, or else the text (a
  path)."""
  if text in ("True", "False"):
    return text == "True"
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return text


def main(argv):
  del argv
  workloads = {w: trial_configs.load_config(w, {}, _CONFIG_DIR) for w in _WORKLOADS.value}
  methods = {}
  for m in _METHODS.value:
    # `name` or `name:option=value:...`. The same learning rate and decay
    # for every method: only cost is timed.
    name, *options = m.split(":")
    extra = {k: _number(v) for k, v in (o.split("=", 1) for o in options)}
    methods[m] = config_lib.optim_section(name, learning_rate=1e-3,
                                          weight_decay=0.01, **extra)
  rows = overhead.ratios(
      overhead.measure(workloads, methods, steps=_STEPS.value,
                       rounds=_ROUNDS.value), _METHODS.value[0])
  import jax  # pylint: disable=g-import-not-at-top
  header = {"command": " ".join(["python"] + sys.argv),
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                       f"jax {jax.__version__} on {jax.devices()[0].platform}",
            "steps_per_timing": _STEPS.value, "rounds": _ROUNDS.value}
  os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
  with open(_OUT.value + ".json", "w") as f:
    json.dump({**header, "rows": rows}, f, indent=2)
  table = overhead.markdown(rows)
  with open(_OUT.value + ".md", "w") as f:
    f.write(f"# Optimizer overhead\n\n`{header['command']}`\n\n"
            f"{header['date']}, {header['machine']}. Median of "
            f"{_ROUNDS.value} interleaved rounds; update: a jitted "
            f"{_STEPS.value}-update scan; step: {_STEPS.value} jitted steps "
            "dispatched back to back; compile excluded.\n\n" + table
            + "\n")
  print(table)


if __name__ == "__main__":
  cli.run(main)
