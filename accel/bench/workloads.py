"""The CPU benchmark workloads that suite configs share: a training config,
its evaluation interval, the target rule and overrides (see suite.py).

Each function returns a fresh dict, so a suite may change its copy.
"""

from accel.errors import ConfigError


def digits_cnn(steps: int = 1000) -> dict:
  """The CNN of configs/digits_cnn.py on scikit-learn's 8x8 digits."""
  return dict(config="digits_cnn", eval_every=100, target_fraction=0.99,
              overrides={"total_steps": steps})


def mnist1d_cnn(steps: int = 1500) -> dict:
  """A narrower (32-channel) MNIST-1D CNN with batch 64."""
  return dict(config="mnist1d_cnn", eval_every=150, target_fraction=0.99,
              overrides={"total_steps": steps, "batch_size": 64,
                         "model": {"channels": (32, 32, 32)}})


def mnist1d_mlp(steps: int = 1500) -> dict:
  return dict(config="mnist1d_mlp", eval_every=150, target_fraction=0.99,
              overrides={"total_steps": steps})


def recall_gru(steps: int = 1500) -> dict:
  """A GRU with attention pooling on associative recall."""
  return dict(config="sequence_transformer:rnn", eval_every=150,
              target_fraction=0.99, overrides={"total_steps": steps})


def synthetic_imbalanced_noisy(steps: int = 1000) -> dict:
  """1:20 class imbalance, 20% corrupted labels; balanced clean test set."""
  return dict(config="synthetic_mlp:imbalance=20,noise=0.2", eval_every=100,
              target_fraction=0.99, overrides={"total_steps": steps})


# The full suite's workloads, sized so tuned AdamW needs 20-120 s (about
# 25-35 s, the cheap end, so the whole suite fits in hours) to reach the
# target on 2 CPU cores of the AMD EPYC (Zen 4) of 2026-12-02
# (benchmarks/cpu_full/sizing.md has the sizing runs; the suite's report
# states what each took).


def text_lm(steps: int = 320) -> dict:
  """A byte-level decoder Transformer (2 layers, width 64) on the CPython
  standard library's sources: 64 sequences of 64 bytes, 4,096 tokens a
  step (configs/text_lm.py, accel.data.text)."""
  return dict(config="text_lm", eval_every=steps // 10, target_fraction=0.99,
              overrides={"total_steps": steps, "batch_size": 64,
                         "data": {"length": 64, "max_test_bytes": 64 << 10},
                         "model": {"width": 64, "mlp_dim": 256},
                         "optim": {"warmup_steps": steps // 10}})


def resnet20_textures(steps: int = 240) -> dict:
  """ResNet-20 on the CIFAR-sized textures, batch 32, pixel noise 1.5 (at
  the data set's default 2.5 AdamW stays near chance for the first hundred
  steps and ends at 0.33 here), 1,000 test images (evaluating 2,000 took
  as long as the training)."""
  return dict(config="textures_resnet", eval_every=steps // 10,
              target_fraction=0.99,
              overrides={"total_steps": steps, "batch_size": 32,
                         "eval_batch_size": 500,
                         "data": {"num_test": 1000, "noise": 1.5},
                         "optim": {"warmup_steps": steps // 10}})


def mnist1d_cnn_wide(steps: int = 1000, channels: int = 192) -> dict:
  """The MNIST-1D CNN of configs/mnist1d_cnn.py at `channels` channels and
  batch 512. At its default size (64 channels, batch 128) tuned AdamW
  reaches 99% of its best after about 800 of its 4,000 steps, 3 s here:
  MNIST-1D has 4,000 training examples, and the model plateaus. At 128
  channels it took 433 +- 125 steps, 15.7 s on a Zen 3, below the suite's
  20 s; 192 channels cost 1.7x a step (benchmarks/cpu_full/sizing.md)."""
  return dict(config="mnist1d_cnn", eval_every=steps // 10,
              target_fraction=0.99,
              overrides={"total_steps": steps, "batch_size": 512,
                         "model": {"channels": (channels,) * 3},
                         "optim": {"warmup_steps": steps // 10}})


def synthetic_large(steps: int = 1800) -> dict:
  """The 1:20 imbalanced, 20%-noisy task at a size that takes time: 100
  classes in 256 dimensions, 131,072 examples, a 1024-wide MLP, batch 256."""
  return dict(config="synthetic_mlp:imbalance=20,noise=0.2",
              eval_every=steps // 10, target_fraction=0.99,
              overrides={"total_steps": steps, "batch_size": 256,
                         "data": {"num_train": 131072, "dim": 256,
                                  "num_classes": 100, "num_test": 10000},
                         "model": {"hidden": (1024, 1024)}})


def digits_cnn_wide(steps: int = 200) -> dict:
  """The digits CNN at 64 and 128 channels, batch 512 (a third of the
  1,437 training images a step): at batch 128 tuned AdamW reaches its
  target in 160 steps, 6 s here."""
  return dict(config="digits_cnn", eval_every=steps // 10,
              target_fraction=0.99,
              overrides={"total_steps": steps, "batch_size": 512,
                         "model": {"channels": (64, 128)},
                         "optim": {"warmup_steps": steps // 10}})


def keep_methods(bench, names: str) -> None:
  """Keeps the methods named in `names` ("a+b") and the baseline (and only
  their workload exclusions); raises on a name the bench config does not
  have."""
  keep = set(names.split("+")) | {bench.baseline}
  unknown = sorted(keep - set(bench.methods))
  if unknown:
    raise ConfigError(f"Unknown method {unknown[0]!r}; expected some of "
                      f"{sorted(bench.methods)}.")
  bench.methods = {k: v for k, v in bench.methods.items() if k in keep}
  for w in bench.workloads.values():
    if "exclude_methods" in w:
      w.exclude_methods = {k: v for k, v in w.exclude_methods.items()
                           if k in keep}


def keep_workloads(bench, names: str) -> None:
  """Keeps the workloads named in `names` ("a+b"); raises on a name the
  bench config does not have."""
  keep = set(names.split("+"))
  unknown = sorted(keep - set(bench.workloads))
  if unknown:
    raise ConfigError(f"Unknown workload {unknown[0]!r}; expected some of "
                      f"{sorted(bench.workloads)}.")
  bench.workloads = {k: v for k, v in bench.workloads.items() if k in keep}


def set_config_dir(bench, config_dir: str) -> None:
  """Makes every workload of `bench` look its training config up in
  `config_dir` (a suite config passes its own configs/ folder)."""
  for w in bench.workloads.values():
    w.config_dir = config_dir
