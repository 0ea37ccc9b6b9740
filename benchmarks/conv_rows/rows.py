"""Prints, for every workload of the full and the quick CPU suites, each
hidden kernel's rows a step and whether the Newton-Schulz cost rule
orthogonalises it with one count for every kernel (the old rule) and with
its own rows (accel.models.kernel_rows, the new one).

  .venv/bin/python benchmarks/conv_rows/rows.py > benchmarks/conv_rows/rows.log
"""

import importlib.util
import os

import flax.linen as nn
import jax
from optax import contrib

from accel import data
from accel.bench import trial_configs
from accel.optim import matrices
from accel.optim import orthogonal
from accel.train import build as build_lib

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def _suite(variant):
  spec = importlib.util.spec_from_file_location(
      "cpu", os.path.join(_ROOT, "configs", "bench", "cpu.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


def main():
  is_dims = lambda x: x is None or isinstance(x, contrib.MuonDimensionNumbers)
  for variant in ("full", ""):
    for wname, workload in _suite(variant).workloads.items():
      c = trial_configs.workload_config(workload)
      spec = data.make_source(c.data).spec
      model = build_lib.make_model(c, spec)
      rows = build_lib.kernel_rows(model, spec, c.batch_size)
      count = build_lib.rows_per_step(c.batch_size, spec)
      params = nn.meta.unbox(build_lib.boxed_param_shapes(model, spec))
      picked = [jax.tree_util.tree_leaves_with_path(t, is_leaf=is_dims)
                for t in (matrices.hidden_matrices(params),
                          orthogonal.orthogonalised(params, rows_per_step=count,
                                                    max_cost=0.5),
                          orthogonal.orthogonalised(params, rows_per_step=rows,
                                                    max_cost=0.5))]
      print(f"{variant or 'quick'} {wname}: batch {c.batch_size}, one count "
            f"{count}")
      for (keys, hidden), (_, old), (_, new) in zip(*picked):
        if hidden is not None:
          path = matrices.path(keys)
          kind = lambda d: "Muon" if d is not None else "NAdamW"
          print(f"  {path:40s} rows {rows.get(path, 0):7d}  "
                f"one count: {kind(old):6s}  own rows: {kind(new)}")


if __name__ == "__main__":
  main()
