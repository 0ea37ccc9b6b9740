"""Optimizers: an optax-chain factory, and accel's learned transforms."""

from accel.optim.factory import eval_params
from accel.optim.factory import make
from accel.optim.factory import needs_rows
from accel.optim.factory import Optimizer
from accel.optim.factory import OPTIMIZERS
from accel.optim.gt_transform import gradient_transformer
from accel.optim.gt_transform import GradientTransformerState
from accel.optim.gt_transform import scale_by_gradient_transformer
from accel.optim.meta_attention import meta_attention_adamw
from accel.optim.meta_attention import MetaAttentionState
from accel.optim.meta_attention import scale_by_meta_attention_lr
from accel.optim.orthogonal import hybrid as orthogonal_hybrid
from accel.optim.schedules import make_schedule
