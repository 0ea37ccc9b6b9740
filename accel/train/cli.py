"""What the binaries in launch/ share: flag parsing and a `main` wrapper
that turn a user's mistake into one or two lines.

  from accel.train import cli
  if __name__ == "__main__":
    cli.run(main)

- An unknown `--config.KEY`, an unknown config variant, a bad value in a
  config file or any other flag error: one line on stderr, exit status 2.
- accel's own errors (accel.errors.AccelError: a bad value, a missing
  file, a refused resume, a checkpoint that could not be written): one
  line (the message) on stderr, exit status 2; the traceback only with
  `-v 1` (absl's verbosity flag).
- An interrupted or preempted run (accel.errors.RunStopped): its one line
  on stderr and its exit status (130 for Ctrl-C, 143 for SIGTERM).
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
import sys

from absl import app
from absl import flags
from ml_collections.config_flags import config_flags

from accel.errors import AccelError
from accel.errors import RunStopped

USAGE_ERROR = 2


def _verbose() -> bool:
  return flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].present


def _fatal(message: str, status: int = USAGE_ERROR):
  print(f"FATAL: {message}", file=sys.stderr)
  sys.exit(status)


def _unknown_key(e: Exception, argv) -> str:
  """The line for an unknown `--config.` key (ml_collections raises a
  KeyError or AttributeError naming it)."""
  text = str(e).replace("\\'", "'").replace("\\n", "\n")
  found = re.search(r"'([A-Za-z0-9_]+)'", text)
  key = found.group(1) if found else text
  bad = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")
         and a.split("=")[0].split(".")[-1] == key]
  where = f" ({bad[0]})" if bad else ""
  suggestion = re.search(r'Did you mean "([A-Za-z0-9_]+)"', text)
  hint = f" Did you mean {suggestion.group(1)!r}?" if suggestion else ""
  return (f"unknown config key {key!r}{where}.{hint} A config accepts the "
          "keys its file lists (each section lists every option of the "
          "model, data set or optimizer it names).")


def _cause(e: BaseException) -> AccelError | None:
  """The first AccelError that `e` was raised from, if any (ml_collections
  wraps an error of a config file in another of the same type carrying the
  traceback as text: the innermost is the one with the message)."""
  found = None
  while e is not None:
    if isinstance(e, AccelError):
      found = e
    e = e.__cause__ or e.__context__
  return found


def _check_config_files() -> None:
  """ml_collections defers a config file that failed to load (a missing
  file) to the first use of its value; this uses it now."""
  for name in flags.FLAGS:
    flag = flags.FLAGS[name]
    if isinstance(flag.parser, config_flags.ConfigFileFlagParser) and (
        flag.value is not None):
      try:
        flag.value.keys()
      except OSError as e:
        lines = [l.strip() for l in str(e).splitlines() if l.strip()]
        _fatal(f"--{name}: " + " ".join(lines[-2:]))


def parse_flags(argv):
  """absl flag parsing whose errors are one line (see the module doc)."""
  try:
    argv = flags.FLAGS(argv)
    _check_config_files()
    return argv
  except (KeyError, AttributeError) as e:
    _fatal(_unknown_key(e, argv))
  except flags.Error as e:
    cause = _cause(e)
    if cause is not None:
      _fatal(str(cause))
    lines = [l for l in str(e).splitlines() if l.strip()]
    _fatal(lines[-1] if lines else type(e).__name__)


def _guarded(main):
  def wrapped(argv):
    try:
      return main(argv)
    except RunStopped as e:
      print(str(e), file=sys.stderr)
      sys.exit(e.exit_status)
    except AccelError as e:
      if _verbose():
        raise
      _fatal(str(e))
  return wrapped


def run(main) -> None:
  """absl's app.run with the flag parsing and error handling above."""
  app.run(_guarded(main), flags_parser=parse_flags)
