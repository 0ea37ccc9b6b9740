"""Optimizers: an optax-chain factory, and (later) accel's learned transforms."""

from accel.optim.factory import eval_params
from accel.optim.factory import make
from accel.optim.factory import Optimizer
from accel.optim.factory import OPTIMIZERS
from accel.optim.schedules import make_schedule
