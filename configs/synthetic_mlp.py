r"""An MLP on the synthetic Gaussian-cluster task, imbalanced and noisy.

  python launch/train.py --config configs/synthetic_mlp.py:imbalance=100,noise=0.2 \
      --workdir runs/synthetic_1to100_noise20

Variants: `debug`, `imbalance=R` (largest/smallest class, default 1),
`noise=P` (share of flipped training labels, default 0), `hard=P` (share of
examples pulled towards another class, default 0).
"""

from accel.train import config as config_lib


def get_config(arg: str = ""):
  variants, options = config_lib.parse_variant(
      arg, names=("debug",), options=("hard", "imbalance", "noise"))
  c = config_lib.base_config()
  c.data = config_lib.data_section(
      "synthetic", imbalance=float(options.get("imbalance", 1.0)),
      label_noise=float(options.get("noise", 0.0)),
      hard_fraction=float(options.get("hard", 0.0)), separation=2.0)
  c.model = config_lib.model_section("mlp", hidden=(128, 128))
  c.optim = config_lib.optim_section("adamw", learning_rate=1e-3,
                                     schedule="cosine", warmup_steps=100)
  c.total_steps = 3000
  if "debug" in variants:
    config_lib.shrink_for_debug(c)
  return c
