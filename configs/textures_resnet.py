r"""ResNet-20 on CIFAR-sized synthetic textures (accel.data.textures).

A CIFAR-10-shaped image task (50,000 32x32x3 training images, 10 classes)
that needs no download, for the accelerator benchmark suite and for
checking a convolutional pipeline end to end.

  python launch/train.py --config configs/textures_resnet.py --workdir runs/textures

Variants: `debug` (2,048 images, a narrow ResNet, a few steps).
"""

from accel.train import config as config_lib


def get_config(arg: str = ""):
  variants, _ = config_lib.parse_variant(arg, names=("debug",))
  c = config_lib.base_config()
  c.data = config_lib.data_section("textures")
  c.model = config_lib.model_section(
      "resnet", stage_channels=(16, 32, 64), blocks_per_stage=3)
  c.optim = config_lib.optim_section(
      "adamw", learning_rate=3e-3, schedule="cosine", warmup_steps=200,
      weight_decay=0.05, grad_clip_norm=1.0)
  c.total_steps, c.batch_size = 3000, 128
  c.eval_every = c.checkpoint_every = 1000
  c.eval_batch_size = 1000
  if "debug" in variants:
    c.data.num_train, c.data.num_test = 2048, 512
    c.model.stage_channels, c.model.blocks_per_stage = (8, 16), 1
    c.batch_size = 32
    config_lib.shrink_for_debug(c)
  return c
