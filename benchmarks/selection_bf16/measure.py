r"""What a bfloat16 scoring pass costs against a float32 one (issue 21).

  python benchmarks/selection_bf16/measure.py

The loss scorer (an eval-mode forward over the candidates) of three of the
full CPU suite's models, over 4x their batch of candidates, with
`config.selection.score_dtype` float32 and bfloat16
(accel.selection.selector.scoring_model): median of 7 rounds of 10 jitted
calls, the two dtypes interleaved; and how many of float32's top quarter
bfloat16 picks. Results: results.md beside this file.
"""

import importlib.util
import json
import os
import sys
import time

import jax
import numpy as np

from accel import data
from accel import models
from accel.selection import scorers
from accel.selection import selector as selector_lib

_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "..", "configs")

# (name, config file, model and data overrides as the full suite's,
#  candidates = 4 x the suite's batch)
WORKLOADS = (
    ("digits_cnn (64, 128 ch)", "digits_cnn", {"channels": (64, 128)}, {},
     2048),
    ("mnist1d_cnn (128 ch)", "mnist1d_cnn", {"channels": (128, 128, 128)},
     {}, 2048),
    ("synthetic MLP (1024, 1024)", "synthetic_mlp", {"hidden": (1024, 1024)},
     {"num_train": 4096, "dim": 256, "num_classes": 100}, 1024),
)


def _sections(config_name, model_over, data_over):
  spec = importlib.util.spec_from_file_location(
      config_name, os.path.join(_CONFIGS, config_name + ".py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config("")
  c.model.update(model_over)
  c.data.update(data_over)
  return c.data, c.model


def main():
  rows = []
  for name, config_name, model_over, data_over, n in WORKLOADS:
    data_c, model_c = _sections(config_name, model_over, data_over)
    source = data.make_source(data_c)
    model = models.make(model_c, source.spec)
    params = model.init(jax.random.PRNGKey(0),
                        models.dummy_inputs(source.spec),
                        train=False)["params"]
    idx = np.arange(n) % source.num_examples("train")
    batch = source.fetch("train", idx)
    fns = {d: jax.jit(scorers.loss_scorer(selector_lib.scoring_model(
        model, d))) for d in selector_lib.SCORE_DTYPES}
    scores = {d: np.asarray(f(params, batch)) for d, f in fns.items()}
    times = {d: [] for d in fns}
    for _ in range(7):
      for d, f in fns.items():
        t0 = time.perf_counter()
        for _ in range(10):
          out = f(params, batch)
        out.block_until_ready()
        times[d].append((time.perf_counter() - t0) / 10 * 1e3)
    top = lambda s: set(np.argsort(-s)[:n // 4])
    row = dict(workload=name, candidates=n,
               **{f"{d}_ms": float(np.median(t)) for d, t in times.items()},
               top_quarter_overlap=len(top(scores["float32"])
                                       & top(scores["bfloat16"])) / (n // 4))
    rows.append(row)
    print(json.dumps(row), flush=True)
  out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     "results.json")
  with open(out, "w") as f:
    json.dump({"argv": sys.argv, "machine": jax.devices()[0].device_kind,
               "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
