r"""An MLP on MNIST-1D; `optimizer=NAME` picks any optimizer of the factory.

  python launch/train.py --config configs/mnist1d_mlp.py --workdir runs/mnist1d_mlp
  python launch/train.py --config configs/mnist1d_mlp.py:optimizer=lion \
      --config.optim.learning_rate=3e-4 --workdir runs/mnist1d_mlp_lion

Variants: `debug`, `optimizer=NAME` (sgd, adam, adamw, nadamw, rmsprop,
adagrad, lamb, lars, lion, schedule_free_adamw, prodigy, mechanic, dog,
muon, gradient_transformer, meta_attention_adamw).
"""

from accel.train import config as config_lib


def get_config(arg: str = ""):
  variants, options = config_lib.parse_variant(
      arg, names=("debug",), options=("optimizer",))
  c = config_lib.base_config()
  c.data = config_lib.data_section("mnist1d")
  c.model = config_lib.model_section("mlp", hidden=(256, 256), dropout=0.2)
  c.optim = config_lib.optim_section(
      options.get("optimizer", "adamw"), learning_rate=1e-3,
      schedule="cosine", warmup_steps=100)
  c.total_steps = 4000
  if "debug" in variants:
    config_lib.shrink_for_debug(c)
  return c
