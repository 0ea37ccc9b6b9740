import sys, time
from accel.bench import trial, trial_configs, workloads
from accel.train import config as config_lib
bench = config_lib.load_file("configs/bench/cpu.py:full")
m = bench.methods.adamw
for noise in (2.5, 1.5):
  for lr in (1e-2, 3e-2, 1e-1):
    w = bench.workloads["resnet20_textures"]
    c = trial_configs.trial_config(w, m, lr, 100)
    with c.unlocked():
      c.total_steps = 240; c.optim.warmup_steps = 24; c.data.noise = noise
    r = trial.run_trial(c, eval_every=30)
    print("resnet noise", noise, "lr", lr, [round(p["accuracy"],3) for p in r["curve"]], f"{r['step_ms']:.0f}ms", flush=True)
w = bench.workloads["mnist1d_cnn"]
for bs in (128, 256):
  c = trial_configs.trial_config(w, m, 1e-2, 100)
  with c.unlocked():
    c.total_steps = 400; c.batch_size = bs
  r = trial.run_trial(c, eval_every=200)
  print("mnist1d_cnn bs", bs, f"{r['step_ms']:.2f}ms", flush=True)
