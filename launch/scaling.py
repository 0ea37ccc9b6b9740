"""Step time and examples/s of a config's sharded train step per device
count, layout and precision.

  # 1, 2, 4, 8 simulated CPU devices (they share this machine's cores: this
  # checks that sharding works and what it costs, not how it scales):
  XLA_FLAGS=--xla_force_host_platform_device_count=8 python launch/scaling.py \
      --config configs/lm_transformer.py --devices 1,2,4,8 \
      --out benchmarks/scaling_cpu
  # One GPU, bfloat16 against float32, a larger Transformer LM:
  python launch/scaling.py --config configs/lm_transformer.py:large \
      --devices 1 --precisions float32,bfloat16 --out benchmarks/scaling_gpu

writes `<out>.json` and `<out>.md`.
"""

import datetime
import json
import os
import platform
import sys

from absl import flags
from ml_collections import config_flags

from accel.bench import scaling
from accel.train import cli

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/lm_transformer.py", "Config file[:variant].",
    lock_config=True)
_DEVICES = flags.DEFINE_list("devices", ["1", "2", "4", "8"],
                             "Device counts (the first N devices).")
_LAYOUTS = flags.DEFINE_list("layouts", ["data", "fsdp"],
                             "Mesh layouts: data and/or fsdp.")
_PRECISIONS = flags.DEFINE_list("precisions", ["float32"],
                                "Compute dtypes: float32 and/or bfloat16.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per point.")
_OUT = flags.DEFINE_string("out", "benchmarks/scaling", "Output path "
                           "without extension.")


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  config = _CONFIG.value
  results = []
  for precision in _PRECISIONS.value:
    for layout in _LAYOUTS.value:
      for n in map(int, _DEVICES.value):
        if n > jax.device_count():
          raise ValueError(f"--devices asks for {n}; {jax.device_count()} "
                           "are available (simulate CPU devices with "
                           "XLA_FLAGS=--xla_force_host_platform_device_count"
                           "=8).")
        if n == 1 and layout != _LAYOUTS.value[0]:
          continue  # one device: every layout is the same program
        r = scaling.measure(config, devices=n, layout=layout,
                            precision=precision, steps=_STEPS.value)
        print(f"{n} {layout} {precision}: {r['step_ms']:.2f} ms/step, "
              f"{r['examples_per_s']:,.0f} examples/s", flush=True)
        results.append(r)
  dev = jax.devices()[0]
  flags_env = os.environ.get("XLA_FLAGS", "").strip()
  prefix = [f"XLA_FLAGS={flags_env}"] if flags_env else []
  header = {"command": " ".join(prefix + ["python"] + sys.argv),
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                       f"jax {jax.__version__}, {jax.device_count()} "
                       f"{dev.platform} devices ({dev.device_kind})",
            "config": json.loads(config.to_json_best_effort())}
  os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
  with open(_OUT.value + ".json", "w") as f:
    json.dump({**header, "results": results}, f, indent=2)
  note = ""
  if dev.platform == "cpu" and jax.device_count() > 1:
    note = ("Simulated CPU devices share this machine's cores: more devices "
            "split the same compute and add collectives, so these numbers "
            "show that sharding works and what it costs here, never how it "
            "scales on real accelerators.\n\n")
  table = scaling.markdown(results, "Train-step throughput")
  with open(_OUT.value + ".md", "w") as f:
    f.write(f"`{header['command']}`\n\n{header['date']}, {header['machine']}"
            f". Global batch {results[0]['batch_size']}; mean of "
            f"{_STEPS.value} steps after 3 warm-up steps, on batches already "
            f"on the devices; compile excluded.\n\n{note}{table}")
  print(table)


if __name__ == "__main__":
  cli.run(main)
