"""Run from the checkout root: .venv/bin/python benchmarks/cpu_full/sizing.py text_lm+resnet20_textures

AdamW's grid on the full suite's held-out workloads (tuning seed 100):
time to 99% of the best accuracy over the grid, per learning rate."""
import json, sys
from accel.bench import trial, trial_configs
from accel.train import config as config_lib
bench = config_lib.load_file("configs/bench/cpu.py:full")
out = {}
for wname in sys.argv[1].split("+"):
  w = bench.workloads[wname]
  runs = {}
  for lr in bench.methods.adamw.learning_rates:
    c = trial_configs.trial_config(w, bench.methods.adamw, lr, 100)
    r = trial.run_trial(c, eval_every=w.eval_every)
    runs[lr] = r
    print(wname, lr, [round(p["accuracy"], 3) for p in r["curve"]],
          f"{r['step_ms']:.1f} ms/step", flush=True)
  best_lr = max(runs, key=lambda l: runs[l]["final_accuracy"])
  target = 0.99 * runs[best_lr]["best_accuracy"]
  for lr, r in runs.items():
    reach = trial.first_reach(r["curve"], target)
    print(wname, f"lr {lr:g}: target {target:.4f} reached at step",
          reach["steps_to_target"], "after", reach["seconds_to_target"], "s;",
          f"budget {r['curve'][-1]['train_s']:.1f} s", flush=True)
  out[wname] = {str(l): {"curve": r["curve"], "step_ms": r["step_ms"]} for l, r in runs.items()}
json.dump(out, open("/tmp/sizing.json", "w"))
