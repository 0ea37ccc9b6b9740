"""Hyperparameter search over any config key: Optuna (TPE, random, grid or
CMA-ES; successive-halving, Hyperband or median pruning fed by the run's
periodic evaluations) with its SQLite storage in the sweep's workdir, so a
killed sweep continues where it stopped. `launch/sweep.py` is the binary."""

from accel.sweep.space import Categorical
from accel.sweep.space import Int
from accel.sweep.space import load
from accel.sweep.space import LogUniform
from accel.sweep.space import Sweep
from accel.sweep.space import Uniform
from accel.sweep.study import load_study
from accel.sweep.study import run
from accel.sweep.study import sweep_identity
