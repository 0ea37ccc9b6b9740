"""Train state, pure train/eval steps, checkpoints, metrics and `run()`."""

from accel.train.build import Parts
from accel.train.build import Steps
from accel.train.checkpoint import CheckpointMismatchError
from accel.train.config import base_config
from accel.train.config import validate
from accel.train.loop import evaluate
from accel.train.loop import run
from accel.train.state import init_state
from accel.train.state import TrainState
from accel.train.step import eval_step
from accel.train.step import loss_and_stats
from accel.train.step import train_step
