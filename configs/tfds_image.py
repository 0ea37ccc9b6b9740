r"""Image classification on a prepared tfds data set (needs the data locally).

  python launch/train.py --config configs/tfds_image.py:dataset=cifar10,model=resnet \
      --config.data.data_dir=~/tensorflow_datasets --workdir runs/cifar10_resnet
  python launch/train.py --config configs/tfds_image.py:dataset=fashion_mnist \
      --workdir runs/fashion_cnn

Variants: `debug`, `dataset=NAME` (mnist, fashion_mnist, cifar10, cifar100,
...; default mnist), `model=cnn|resnet|transformer` (default cnn),
`attention` (adapters after each conv/residual block).
The data set must be prepared in array_record format first; the error says
how when it is not.
"""

from accel.train import config as config_lib

_MODELS = {
    "cnn": dict(channels=(32, 64, 128), kernel_size=3, strides=2, pool="mean",
                hidden=128),
    "resnet": dict(stage_channels=(16, 32, 64), blocks_per_stage=3),
    "transformer": dict(width=128, num_layers=4, num_heads=4, mlp_dim=256,
                        patch_size=4),
}


def get_config(arg: str = ""):
  variants, options = config_lib.parse_variant(
      arg, names=("attention", "debug"), options=("dataset", "model"))
  model = options.get("model", "cnn")
  if model not in _MODELS:
    raise ValueError(f"model={model!r}; expected one of {sorted(_MODELS)}.")
  c = config_lib.base_config()
  c.data = config_lib.data_section("tfds",
                                   dataset=options.get("dataset", "mnist"))
  extra = {"attention": True} if "attention" in variants else {}
  c.model = config_lib.model_section(model, **_MODELS[model], **extra)
  c.optim = config_lib.optim_section(
      "adamw", learning_rate=1e-3, schedule="cosine", warmup_steps=500,
      weight_decay=0.05, grad_clip_norm=1.0)
  c.total_steps, c.eval_every, c.checkpoint_every = 20000, 2000, 2000
  if "debug" in variants:
    config_lib.shrink_for_debug(c)
  return c
