import sys, ml_collections
from accel.bench import trial, trial_configs
from accel.train import config as config_lib
bench = config_lib.load_file("configs/bench/cpu.py:full")
m = bench.methods.adamw
for ch, bs in [(128,512),(192,512),(256,512),(128,1024)]:
  w = ml_collections.ConfigDict(dict(config="mnist1d_cnn", eval_every=40, target_fraction=0.99,
     overrides={"total_steps": 80, "batch_size": bs, "model": {"channels": (ch,ch,ch)}, "optim": {"warmup_steps": 8}}))
  c = trial_configs.trial_config(w, m, 3e-2, 100)
  r = trial.run_trial(c, eval_every=w.eval_every)
  print(ch, bs, f"{r['step_ms']:.1f} ms/step", r["curve"][-1]["train_s"], flush=True)
