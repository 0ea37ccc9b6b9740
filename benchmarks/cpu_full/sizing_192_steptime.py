import ml_collections
from accel.bench import trial, trial_configs, workloads
from accel.train import config as config_lib
bench = config_lib.load_file("configs/bench/cpu.py:full")
m = bench.methods.adamw
for ch, bs in [(128,512),(192,512),(256,512),(128,1024)]:
  w = workloads.mnist1d_cnn_wide(80, ch)
  w["eval_every"] = 40
  w["overrides"]["batch_size"] = bs
  w = ml_collections.ConfigDict(w)
  c = trial_configs.trial_config(w, m, 3e-2, 100)
  r = trial.run_trial(c, eval_every=w.eval_every)
  print(ch, bs, f"{r['step_ms']:.1f} ms/step", r["curve"][-1]["train_s"], flush=True)
