import ml_collections
from accel.bench import trial, trial_configs, workloads
from accel.train import config as config_lib
bench = config_lib.load_file("configs/bench/cpu.py:full")
m = bench.methods.adamw
w = ml_collections.ConfigDict(workloads.mnist1d_cnn_wide(1000, 192))
runs = {}
for lr, seed in [(3e-2, 0), (3e-2, 1), (1e-2, 0)]:
  c = trial_configs.trial_config(w, m, lr, seed)
  r = trial.run_trial(c, eval_every=w.eval_every); runs[(lr, seed)] = r
  print(lr, seed, [round(p["accuracy"], 3) for p in r["curve"]], f"{r['step_ms']:.1f} ms/step", flush=True)
target = 0.99 * min(runs[(3e-2, s)]["best_accuracy"] for s in (0, 1))
for k, r in runs.items():
  print(k, target, trial.first_reach(r["curve"], target), flush=True)
