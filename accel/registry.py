"""Named builders that a config section selects: `{name: ..., **options}`.

Models, data sources and optimizers each keep a `Registry`. A config section
names one entry and carries its options; `Registry.build` checks both against
what the entry accepts, so a typo fails at start-up with the bad value and the
accepted ones, not deep inside a traced function.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Mapping

from accel.errors import ConfigError


def _suggest(word: str, choices) -> str:
  close = difflib.get_close_matches(word, list(choices), n=1)
  return f" Did you mean {close[0]!r}?" if close else ""


def accepted_options(fn: Callable[..., Any]) -> list[str] | None:
  """Keyword names `fn` accepts, or None when it takes **kwargs."""
  params = inspect.signature(fn).parameters.values()
  if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
    return None
  return [
      p.name for p in params
      if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    inspect.Parameter.KEYWORD_ONLY)
  ]


def check_options(fn: Callable[..., Any], options: Mapping[str, Any],
                  what: str) -> None:
  """Raises ValueError naming any option in `options` that `fn` does not take."""
  accepted = accepted_options(fn)
  if accepted is None:
    return
  unknown = sorted(set(options) - set(accepted))
  if unknown:
    bad = unknown[0]
    raise ConfigError(
        f"Unknown option {bad!r} for {what}.{_suggest(bad, accepted)} "
        f"Accepted options: {sorted(accepted)}.")


class Registry:
  """A name -> builder table for one kind of thing (model, data set, ...)."""

  def __init__(self, kind: str):
    self.kind = kind
    self._builders: dict[str, Callable[..., Any]] = {}

  def register(self, name: str):
    def wrap(fn):
      if name in self._builders:
        raise ConfigError(f"{self.kind} {name!r} is registered twice.")
      self._builders[name] = fn
      return fn
    return wrap

  @property
  def names(self) -> list[str]:
    return sorted(self._builders)

  def get(self, name: str) -> Callable[..., Any]:
    if name not in self._builders:
      raise ConfigError(
          f"Unknown {self.kind} {name!r}.{_suggest(name, self._builders)} "
          f"Known {self.kind}s: {self.names}.")
    return self._builders[name]

  def build(self, section: Mapping[str, Any], *args, **extra):
    """Calls the builder named by `section['name']` with the other keys."""
    options = dict(section)
    if "name" not in options:
      raise ConfigError(
          f"The {self.kind} config needs a 'name' key, one of {self.names}.")
    name = options.pop("name")
    fn = self.get(name)
    check_options(fn, options, f"{self.kind} {name!r}")
    return fn(*args, **options, **extra)


def option_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
  """`{option: default}` for every keyword option of `fn` with a default.

  dtypes become their names and lists tuples, so the result fits in a
  ConfigDict and can be overridden from the command line.
  """
  out = {}
  for p in inspect.signature(fn).parameters.values():
    if p.default is inspect.Parameter.empty or p.kind not in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY):
      continue
    value = p.default
    if hasattr(value, "dtype") or isinstance(value, type):
      value = getattr(value, "__name__", str(value))
    out[p.name] = value
  return out
