"""The learned direction against its base along one training, step by step.

  .venv/bin/python benchmarks/learned_direction/curve.py \
      --weights benchmarks/learned_direction/run2_unit/learned_direction.msgpack \
      --task clusters_regression_64x2 --out benchmarks/learned_direction/curve

Why: in the second meta-training run the teacher regression's training
streams scored the learned direction better than the base (truncated
meta-loss about -0.08 at the end), while the 400-step ablation, from a
plain initialisation, scored it 31% worse. This trains both from the same
initialisation on the same batches, at the task's tuned base rate from the
run's metadata, and records log L_eval(learned) - log L_eval(base) every
`--every` steps, for each parameter scale and loss scale given (the
meta-training streams draw both; the ablation uses 1 and 1). A curve that
starts negative and ends positive is the short-horizon bias of a
truncated meta-objective (Wu et al., arXiv 1803.02021).
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


def curve(runner, theta, key, steps, every, param_scale, loss_scale):
  """[steps // every] log eval-loss ratios, learned over base, from the
  meta-training's own side-by-side unroll (`runner.truncation` = every)."""
  k_init, k_run, k_eval = jax.random.split(key, 3)
  params = jax.tree.map(lambda p: p * param_scale, runner.task.init(k_init))
  s = unrolled.Streams(
      params=params, opt_state=runner.learned(theta).init(params),
      base_params=params, base_state=runner.base.init(params),
      step=jnp.zeros([], jnp.int32), horizon=jnp.int32(steps),
      loss_scale=jnp.float32(loss_scale))

  # pylint: disable=protected-access
  @jax.jit
  def chunk(s, k):
    s, _ = runner._unroll(theta, s, k)
    return s, (jnp.log(runner._eval_loss(s.params, k_eval))
               - jnp.log(runner._eval_loss(s.base_params, k_eval)))
  # pylint: enable=protected-access

  out = []
  for i in range(steps // every):
    s, r = chunk(s, jax.random.fold_in(k_run, i))
    out.append(float(r))
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--weights", required=True)
  parser.add_argument("--task", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--every", type=int, default=25)
  parser.add_argument("--seeds", type=int, default=2)
  parser.add_argument("--param_scales", default="1,0.5,2")
  parser.add_argument("--loss_scales", default="1,0.01,100")
  args = parser.parse_args()
  theta, _, meta = gt_network.load_weights(args.weights)
  spec = next(t for t in meta["config"]["tasks"] if t["name"] == args.task)
  rate = meta["tuned_learning_rates"][args.task]["learning_rate"]
  runner = unrolled.Runner(tasks_lib.make_task(spec), learning_rate=rate,
                           truncation=args.every,
                           opt_kwargs=dict(meta["config"]["optimizer"]))
  rows = []
  t0 = time.time()
  for ps in map(float, args.param_scales.split(",")):
    for ls in map(float, args.loss_scales.split(",")):
      if ps != 1.0 and ls != 1.0:
        continue  # one factor at a time
      runs = [curve(runner, theta, jax.random.PRNGKey(10_000 + s),
                    args.steps, args.every, ps, ls)
              for s in range(args.seeds)]
      mean = np.mean(runs, axis=0)
      rows.append({"param_scale": ps, "loss_scale": ls,
                   "steps": [args.every * (i + 1) for i in range(len(mean))],
                   "log_ratio": [round(float(v), 4) for v in mean],
                   "log_ratio_seeds": runs})
      print(f"param_scale {ps:g} loss_scale {ls:g}: "
            + " ".join(f"{v:+.3f}" for v in mean[::2]), flush=True)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, f"{args.task}.json"), "w") as f:
    json.dump({"command": "benchmarks/learned_direction/curve.py "
               + " ".join(f"--{k}={v}" for k, v in vars(args).items()),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "task": args.task, "learning_rate": rate, "rows": rows,
               "seconds": round(time.time() - t0, 1)}, f, indent=1)


if __name__ == "__main__":
  main()
