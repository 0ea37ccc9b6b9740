"""The learned direction on tasks meta-training never saw, in steps.

  .venv/bin/python benchmarks/learned_direction/heldout.py \
      --weights runs/meta_direction/learned_direction.msgpack \
      --out benchmarks/learned_direction

Per task: the base's (orthogonal.hybrid) learning rate tuned over a grid of
six on one seed (final eval loss after `--steps` steps); then, at that rate,
three seeds each of the base, the learned direction and its constant
ablation (each tensor's coefficients averaged over that seed's learned run).
Reports final eval losses and log-ratios to the base (negative = better),
mean and standard error over seeds. Step counts, not seconds: this asks
whether the learned part helps at all; the harness measures time.
"""

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from accel.meta import tasks as tasks_lib
from accel.meta import unrolled
from accel.optim import gt_network

TASKS = (
    dict(name="mnist1d_mlp_64x2", data={"name": "mnist1d"},
         model={"name": "mlp", "hidden": (64, 64)}, batch_size=64),
    dict(name="mnist1d_cnn_16", data={"name": "mnist1d"},
         model={"name": "cnn", "channels": (16, 16)}, batch_size=64),
    dict(name="digits_cnn_16", data={"name": "digits"},
         model={"name": "cnn", "channels": (16, 16)}, batch_size=32),
)
GRID = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--weights", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--tasks", default="")
  args = parser.parse_args()
  theta, _, meta = gt_network.load_weights(args.weights)
  opt_kwargs = {k: v for k, v in meta["config"]["optimizer"].items()
                if k != "eps_root"}
  keep = set(filter(None, args.tasks.split(",")))
  rows = {}
  t0 = time.time()
  for spec in TASKS:
    if keep and spec["name"] not in keep:
      continue
    task = tasks_lib.make_task(spec)
    best, grid = unrolled.tune_learning_rate(task, GRID, args.steps)
    runner = unrolled.Runner(task, learning_rate=best, truncation=1,
                             opt_kwargs=opt_kwargs)
    out = {"base": [], "learned": [], "constant": []}
    for seed in range(args.seeds):
      key = jax.random.PRNGKey(20_000 + seed)
      base, _ = runner.run(None, key, args.steps)
      learned, mix = runner.run(theta, key, args.steps)
      constant, _ = runner.run(None, key, args.steps, fixed_mix=mix)
      for k, v in (("base", base), ("learned", learned),
                   ("constant", constant)):
        out[k].append(float(v))
    ratio = lambda k: np.log(out[k]) - np.log(out["base"])
    rows[spec["name"]] = {
        "tuned_lr": best, "grid": {f"{k:g}": v for k, v in grid.items()},
        "losses": out,
        **{f"{k}_vs_base": float(np.mean(ratio(k))) for k in
           ("learned", "constant")},
        **{f"{k}_vs_base_se": float(np.std(ratio(k), ddof=1)
                                    / np.sqrt(args.seeds))
           for k in ("learned", "constant")}}
    print(spec["name"], json.dumps({k: v for k, v in rows[spec["name"]].items()
                                    if k.endswith(("base", "se", "lr"))}),
          f"{time.time() - t0:.0f}s", flush=True)
  result = {"command": "benchmarks/learned_direction/heldout.py "
                       f"--weights {args.weights} --steps {args.steps} "
                       f"--seeds {args.seeds}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "weights_meta_iterations": meta.get("meta_iterations"),
            "tasks": rows}
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "heldout.json"), "w") as f:
    json.dump(result, f, indent=2)
  lines = ["| task | tuned lr | learned vs base | constant vs base |",
           "|---|---|---|---|"]
  for name, r in rows.items():
    lines.append(f"| {name} | {r['tuned_lr']:g} | "
                 f"{r['learned_vs_base']:+.4f} ± {r['learned_vs_base_se']:.4f}"
                 f" | {r['constant_vs_base']:+.4f} ± "
                 f"{r['constant_vs_base_se']:.4f} |")
  with open(os.path.join(args.out, "heldout.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
