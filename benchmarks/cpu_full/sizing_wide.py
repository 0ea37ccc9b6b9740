import sys
from accel.bench import trial, trial_configs
from accel.train import config as config_lib
bench = config_lib.load_file("configs/bench/cpu.py:full")
m = bench.methods.adamw
spec = {
 "mnist1d_cnn": dict(config="mnist1d_cnn", eval_every=100, target_fraction=0.99,
     overrides={"total_steps": 1000, "batch_size": 512, "model": {"channels": (128,128,128)}, "optim": {"warmup_steps": 100}}),
 "digits_cnn": dict(config="digits_cnn", eval_every=30, target_fraction=0.99,
     overrides={"total_steps": 300, "batch_size": 512, "model": {"channels": (64, 128)}, "optim": {"warmup_steps": 30}}),
}
import ml_collections
for wname, w in spec.items():
  w = ml_collections.ConfigDict(w)
  runs = {}
  for lr in (1e-3, 3e-3, 1e-2, 3e-2):
    c = trial_configs.trial_config(w, m, lr, 100)
    r = trial.run_trial(c, eval_every=w.eval_every); runs[lr] = r
    print(wname, lr, [round(p["accuracy"], 3) for p in r["curve"]], f"{r['step_ms']:.1f} ms/step", flush=True)
  best = max(runs, key=lambda l: runs[l]["final_accuracy"])
  target = 0.99 * runs[best]["best_accuracy"]
  for lr, r in runs.items():
    print(wname, lr, trial.first_reach(r["curve"], target), flush=True)
