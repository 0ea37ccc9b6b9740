r"""Meta-training of the gradient transformer's network (accel.meta.trainer).

  python launch/meta_train.py --config configs/meta/default.py \
      --workdir runs/meta_default
  python launch/meta_train.py \
      --config configs/meta/default.py:debug --workdir runs/meta_debug

Running it again in the same workdir resumes (until `num_iterations` or
`max_minutes` of train time). The run leaves gradient_transformer.msgpack
and .json in the workdir; copying both to accel/optim/weights/ ships them.

The task family uses no data set that a held-out benchmark workload reports
on (accel.bench.split reads this file: the benchmarks' workloads on the
synthetic and sequence generators count as seen): Gaussian
clusters drawn with their own seed, dimension and class count (balanced,
clean), a teacher-network regression on them, a random n-gram language of
its own seed and vocabulary (4,096 tokens a step, where the base
orthogonalises every hidden matrix), associative recall, and a small 2-D CNN
on the clusters drawn as 12x12 images with smooth class means (the only
convolutions here, so that conv kernels are not new to the network). The
MLP tasks run at batch 64, where the cost rule sends every matrix to NAdamW.

Variant `debug`: one tiny task and a few iterations (the tests' run).
"""

import ml_collections

from accel.train import config as config_lib

_CLUSTERS = {"name": "synthetic", "num_train": 8192, "num_test": 2048,
             "dim": 24, "num_classes": 8, "separation": 2.0, "data_seed": 7}
_NGRAM = {"name": "sequence", "task": "ngram", "vocab_size": 32, "order": 2,
          "length": 33, "concentration": 0.1, "num_train": 8192,
          "num_test": 1024, "data_seed": 5}
# The clusters as 12x12 images with smooth class means, for a CNN: the same
# generator as the MLP tasks (no data set a held-out benchmark reports on).
_CLUSTER_IMAGES = {"name": "synthetic", "num_train": 8192, "num_test": 2048,
                   "dim": 144, "image_size": 12, "num_classes": 8,
                   "separation": 2.0, "data_seed": 11}
_RECALL = {"name": "sequence", "task": "classification", "num_pairs": 4,
           "num_keys": 8, "num_values": 8, "num_train": 8192,
           "num_test": 1024, "data_seed": 3}


def _task(name, data, model, batch_size, **extra):
  return dict(name=name, data=data, model=model, batch_size=batch_size,
              **extra)


TASKS = (
    _task("clusters_mlp_128x2", _CLUSTERS,
          {"name": "mlp", "hidden": (128, 128)}, 64),
    _task("clusters_regression_64x2", _CLUSTERS,
          {"name": "mlp", "hidden": (64, 64)}, 64, loss="mse"),
    _task("ngram_lm_32", _NGRAM,
          {"name": "transformer_lm", "width": 32, "num_layers": 1,
           "num_heads": 2, "mlp_dim": 64}, 128),
    _task("recall_transformer_32", _RECALL,
          {"name": "transformer", "width": 32, "num_layers": 1,
           "num_heads": 2, "mlp_dim": 64}, 64),
    _task("cluster_images_cnn_8x16", _CLUSTER_IMAGES,
          {"name": "cnn", "channels": (8, 16), "kernel_size": 3}, 32),
)


def get_config(arg: str = ""):
  variants, _ = config_lib.parse_variant(arg, names=("debug",))
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.tasks = [dict(t) for t in TASKS]
  c.lr_grid = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
  c.tune_steps = 400
  c.streams = 4            # inner trainings in flight per task
  c.truncation = 20        # inner steps per meta-gradient
  # No parameter-scale augmentation: the base runs at the rate tuned for the
  # plain initialisation, so on a rescaled one it is mistuned and the network
  # learned to beat a mistuned base (benchmarks/learned_direction/results.md,
  # "Why the regression got worse"). The loss scale is harmless (both
  # optimizers are invariant to it) and stays.
  c.ranges = dict(horizon=(200, 600), param_scale=(1.0, 1.0),
                  loss_scale=(1e-2, 1e2))
  # eps_root > 0: the derivative through Adam's second moment stays finite
  # where a gradient entry is exactly zero (a dead unit), for both the
  # learned optimizer and its base (1e-16 is far below any v here).
  # max_mix: the bound the optimizer ships with (gt_transform.
  # DEFAULT_MAX_MIX), so that the network learns at the bound it is used at
  # (the shipped weights were meta-trained at 1.0).
  c.optimizer = dict(max_mix=0.25, b3=0.99, eps_root=1e-16)
  c.architecture = dict(history=8, width=16, num_heads=2, mlp_ratio=2)
  # A weights file to start from ("" = a fresh initialisation): a run on a
  # wider family may continue an earlier run's network (its architecture
  # must match `architecture`).
  c.init_weights = ""
  # How a task's stream estimates combine (accel.meta.unrolled.
  # combine_streams): "unit" averages unit directions and drops estimates
  # beyond outlier_factor x the median norm (the first run's end-of-run
  # signal was lost to unrolls whose gradients exploded).
  c.stream_rule = "unit"
  c.outlier_factor = 10.0
  c.meta_learning_rate = 1e-3
  c.meta_grad_clip = 1.0
  c.num_iterations = 3000
  c.max_minutes = 60.0
  c.snr_estimates = 4
  c.ablation_steps = 400
  c.ablation_seeds = 2
  c.log_every = 10
  c.checkpoint_every = 25
  c.keep_checkpoints = 2
  if "debug" in variants:
    c.tasks = [_task("clusters_mlp_16", dict(_CLUSTERS, num_train=512,
                                             num_test=256, dim=8),
                     {"name": "mlp", "hidden": (16,)}, 32)]
    c.lr_grid = (1e-3, 1e-2, 1e-1)
    c.tune_steps, c.streams, c.truncation = 50, 2, 5
    c.ranges = dict(horizon=(20, 30), param_scale=(0.5, 2.0),
                    loss_scale=(1e-2, 1e2))
    c.architecture = dict(history=4, width=8, num_heads=2, mlp_ratio=2)
    c.meta_learning_rate = 1e-2
    c.num_iterations, c.snr_estimates = 6, 3
    c.ablation_steps, c.ablation_seeds = 60, 1
    c.log_every, c.checkpoint_every = 2, 3
  return c
