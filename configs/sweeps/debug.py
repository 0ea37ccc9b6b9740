"""A 6-trial sweep sized for seconds: the learning rate of a :debug config.

  python launch/sweep.py --config configs/mnist1d_cnn.py:debug \
      --sweep configs/sweeps/debug.py --workdir runs/sweep_debug

Its range reaches rates that cannot learn in 20 steps, so successive
halving prunes some trials at their first evaluation.
"""

from accel import sweep


def get_sweep():
  return sweep.Sweep(
      space={"optim.learning_rate": sweep.LogUniform(1e-6, 3e-2)},
      metric="accuracy", direction="maximize", trials=6,
      sampler="tpe", pruner="successive_halving",
      pruner_options={"reduction_factor": 2})
