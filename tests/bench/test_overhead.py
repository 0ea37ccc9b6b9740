"""The per-step cost programs: built as a run builds them, and the number
of steps they time."""

import jax
import ml_collections

from accel.bench import overhead
from accel.bench import trial_configs


def test_overhead_programs_run_the_given_number_of_steps():
  """The timed step program is `steps` real train steps (the state's step
  counter advances by that many), and the update program `steps` updates."""
  from accel.bench import overhead  # pylint: disable=g-import-not-at-top
  c = trial_configs.load_config("mnist1d_mlp:debug", {})
  upd, stp, nbytes = overhead._programs(  # pylint: disable=protected-access
      c, ml_collections.ConfigDict({"name": "adamw", "learning_rate": 1e-3}),
      steps=3)
  state = jax.block_until_ready(stp())
  assert int(state.step) == 3
  _, opt_state = upd()
  assert int(opt_state[0].count) == 3  # AdamW's scale_by_adam counter
  assert nbytes > 0
