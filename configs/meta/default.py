r"""Meta-training of the gradient transformer's shipped weights.

  python launch/meta_train.py --config configs/meta/default.py \
      --workdir runs/meta_default
  python launch/meta_train.py --config configs/meta/default.py:debug \
      --workdir runs/meta_debug

Running it again in the same workdir resumes. The run leaves
`gradient_transformer.msgpack` and `.json` in the workdir; copying both to
`accel/optim/weights/` ships them.

The task family: MLP, CNN, GRU and Transformer classifiers on MNIST-1D, an
MLP on the digits, MLP classification and regression on synthetic data, a
Transformer on associative recall. Inner runs draw their base learning rate,
weight decay, initial scale and horizon at every restart. Held out for
evaluation (never seen here): CNNs on the digits, ResNets, the decoder LM,
imbalanced and noisy synthetic data.

Variants: `debug` (one tiny task, a few iterations, a too-small base
learning rate that the weights must learn to raise: the test of the whole
machinery).
"""

import ml_collections

from accel.train import config as config_lib

_MNIST1D = {"name": "mnist1d"}
_SYNTHETIC = {"name": "synthetic", "num_train": 4096, "dim": 32,
              "separation": 2.0}
_RECALL = {"name": "sequence", "task": "classification", "num_pairs": 4,
           "num_keys": 8, "num_values": 8, "num_train": 4096}


def _task(name, data, model, batch_size, **extra):
  return dict(name=name, data=data, model=model, batch_size=batch_size,
              **extra)


TASKS = (
    _task("mnist1d_mlp_64x2", _MNIST1D, {"name": "mlp", "hidden": (64, 64)},
          64),
    _task("mnist1d_mlp_128", _MNIST1D, {"name": "mlp", "hidden": (128,)},
          128),
    _task("mnist1d_cnn_16", _MNIST1D, {"name": "cnn", "channels": (16, 16)},
          64),
    _task("mnist1d_gru_32", _MNIST1D, {"name": "rnn", "cell": "gru",
                                       "hidden": 32}, 32),
    _task("mnist1d_transformer_32", _MNIST1D,
          {"name": "transformer", "width": 32, "num_layers": 1,
           "num_heads": 2, "mlp_dim": 64, "patch_size": 4}, 64),
    _task("digits_mlp_64", {"name": "digits"}, {"name": "mlp",
                                                "hidden": (64,)}, 32),
    _task("synthetic_mlp_128", _SYNTHETIC, {"name": "mlp", "hidden": (128,)},
          64),
    _task("synthetic_regression_64x2", _SYNTHETIC,
          {"name": "mlp", "hidden": (64, 64)}, 64, loss="mse"),
    _task("recall_transformer_32", _RECALL,
          {"name": "transformer", "width": 32, "num_layers": 1,
           "num_heads": 2, "mlp_dim": 64}, 64),
)


def get_config(arg: str = ""):
  variants, _ = config_lib.parse_variant(arg, names=("debug",))
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_iterations = 2000
  c.tasks_per_iteration = 3
  c.num_pairs = 8          # antithetic pairs (streams) per task
  c.num_reference = 2      # AdamW streams shadowing the first streams
  c.truncation = 20        # inner steps per ES truncation
  c.sigma = 0.01           # ES perturbation scale
  c.meta_learning_rate = 3e-3
  c.meta_grad_clip = 1.0
  c.init_output_scale = 0.0  # 0: start exactly at AdamW
  c.architecture = dict(history=8, width=16, num_heads=2, mlp_ratio=2,
                        update_every=4)
  c.inner = dict(learning_rate=(3e-4, 1e-2), weight_decay=(1e-4, 1e-1),
                 init_scale=(0.5, 2.0), horizon=(200, 1000))
  c.tasks = [dict(t) for t in TASKS]
  c.eval_every = 250
  c.eval_steps = 300
  c.log_every = 10
  c.checkpoint_every = 100
  c.keep_checkpoints = 2
  c.progress_bar = True
  if "debug" in variants:
    c.tasks = [_task("synthetic_mlp_32", {"name": "synthetic",
                                          "num_train": 512, "dim": 16},
                     {"name": "mlp", "hidden": (32,)}, 32)]
    c.inner = dict(learning_rate=(1e-4, 1e-4), weight_decay=(1e-4, 1e-4),
                   init_scale=(1.0, 1.0), horizon=(100, 100))
    c.num_iterations, c.tasks_per_iteration = 12, 1
    c.num_pairs, c.num_reference = 4, 1
    c.truncation, c.eval_steps = 10, 50
    c.meta_learning_rate = 3e-2
    c.log_every, c.eval_every, c.checkpoint_every = 4, 0, 6
  return c
