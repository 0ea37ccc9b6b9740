"""accel's own exception classes: errors that a user's input causes.

The binaries in launch/ print these as one short message and exit with
status 2 (a traceback only with -v); anything else is a bug and keeps its
traceback. Each subclasses the built-in error a caller would expect, so
`except ValueError` still catches a ConfigError.
"""


class AccelError(Exception):
  """A known user error: a bad value, a missing file, a refused resume."""


class ConfigError(AccelError, ValueError):
  """A value given in a config, a flag or an argument that accel does not
  accept; the message names it and what was expected."""


class MissingFileError(AccelError, FileNotFoundError):
  """A file the user named (config, weights, table) does not exist."""


class CheckpointError(AccelError, RuntimeError):
  """A checkpoint could not be written or read; the message names the path
  and the cause, and says which checkpoint is intact."""


class RunStopped(AccelError):
  """A run stopped before its last step with its work safe (Ctrl-C, or
  SIGTERM from a preempting scheduler): running the same command again
  resumes. `exit_status` is what the binary exits with."""

  def __init__(self, message: str, exit_status: int):
    super().__init__(message)
    self.exit_status = exit_status
