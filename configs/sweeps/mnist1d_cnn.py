"""A sweep over the MNIST-1D CNN's optimizer (configs/mnist1d_cnn.py): the
learning rate and the weight decay.

  python launch/sweep.py --config configs/mnist1d_cnn.py \\
      --sweep configs/sweeps/mnist1d_cnn.py --workdir runs/sweep

Variants (after the colon): `tpe` (the default: TPE with successive-halving
pruning), `tpe_unpruned` (TPE, every trial to the end), `grid` (every point
of the 6 x 3 grid, no pruning). benchmarks/sweep/ compares the three.
"""

from accel import sweep
from accel.train import config as config_lib

LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
WEIGHT_DECAYS = (1e-3, 3e-2, 3e-1)


def get_sweep(arg: str = ""):
  variants, _ = config_lib.parse_variant(
      arg, names=("tpe", "tpe_unpruned", "grid"))
  if len(variants) > 1:
    raise ValueError(f"Pick one variant, got {sorted(variants)}.")
  variant = variants.pop() if variants else "tpe"
  return sweep.Sweep(
      space={
          "optim.learning_rate": sweep.LogUniform(1e-4, 3e-2,
                                                  grid=LEARNING_RATES),
          "optim.weight_decay": sweep.LogUniform(1e-3, 3e-1,
                                                 grid=WEIGHT_DECAYS),
      },
      metric="accuracy", direction="maximize",
      trials=len(LEARNING_RATES) * len(WEIGHT_DECAYS),
      sampler="grid" if variant == "grid" else "tpe",
      pruner="successive_halving" if variant == "tpe" else "none",
      pruner_options={"reduction_factor": 3} if variant == "tpe" else {})
