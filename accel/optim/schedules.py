"""Learning-rate schedules from config: warmup, then cosine, linear or constant."""

import optax

from accel.errors import ConfigError


def make_schedule(learning_rate: float, total_steps: int, schedule: str,
                  warmup_steps: int = 0,
                  end_lr_factor: float = 0.0) -> optax.Schedule:
  """Linear warmup over `warmup_steps`, then `schedule` to the end.

  Warmup starts at learning_rate / warmup_steps, not 0: a zero first step
  does nothing for most optimizers and gives NaN in Prodigy's step-size
  estimate.

  Args:
    learning_rate: the peak learning rate.
    total_steps: length of the run, warmup included.
    schedule: "cosine" or "linear" (decay to learning_rate * end_lr_factor at
      total_steps), or "constant".
    warmup_steps: steps of linear warmup.
    end_lr_factor: final learning rate as a fraction of the peak.
  """
  if warmup_steps < 0 or warmup_steps >= max(total_steps, 1):
    raise ConfigError(f"warmup_steps must be in [0, total_steps={total_steps}),"
                      f" got {warmup_steps}.")
  decay_steps = total_steps - warmup_steps
  end = learning_rate * end_lr_factor
  if schedule == "cosine":
    main = optax.cosine_decay_schedule(learning_rate, decay_steps,
                                       alpha=end_lr_factor)
  elif schedule == "linear":
    main = optax.linear_schedule(learning_rate, end, decay_steps)
  elif schedule == "constant":
    main = optax.constant_schedule(learning_rate)
  else:
    raise ConfigError(f"Unknown schedule {schedule!r}; expected 'cosine', "
                      "'linear' or 'constant'.")
  if not warmup_steps:
    return main
  warmup = optax.linear_schedule(learning_rate / warmup_steps, learning_rate,
                                 warmup_steps)
  return optax.join_schedules([warmup, main], [warmup_steps])


def as_schedule(learning_rate):
  """A schedule for a float or schedule; None means 1.0."""
  if learning_rate is None:
    return lambda count: 1.0
  if callable(learning_rate):
    return learning_rate
  return lambda count: learning_rate
