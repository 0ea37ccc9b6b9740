"""The full set of top-level config keys, with defaults, and their checks.

Config files start from `base_config()` and override what they need, so
every key a run reads exists and a typo in a config file or on the command
line fails early. Sub-sections (`data`, `model`, `optim`) are `{name, ...}`
dicts checked against what the named builder accepts.
"""

import difflib
import os
from typing import Sequence

import ml_collections

from accel import data
from accel import models
from accel import optim
from accel import parallel
from accel import registry
from accel import selection
from accel.errors import ConfigError
from accel.errors import MissingFileError
from accel.parallel import precision as precision_lib
from accel.train import distill as distill_lib
from accel.train import prune as prune_lib


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.total_steps = 1000
  c.batch_size = 128
  c.eval_batch_size = 512
  c.eval_every = 500  # steps; 0 = only at the end
  c.eval_max_examples = -1  # -1 = the whole test split
  c.log_every = 50
  c.checkpoint_every = 500  # steps; the last step is always saved
  c.keep_checkpoints = 3
  c.progress_bar = True
  c.data = data_section("mnist1d")
  c.model = model_section("cnn")
  c.optim = optim_section("adamw", schedule="cosine")
  c.selection = selection_section()
  # Activation checkpointing per block (accel.models.remat, accel.train.
  # remat): a policy, or "auto" (the fastest that fits memory_budget_mb;
  # 0 = no budget); remat_names narrows save_names/offload.
  c.remat = "none"
  c.remat_names = ()
  c.memory_budget_mb = 0.0
  # Pruning during training (accel.train.prune): snip, magnitude, nm (2:4)
  # or units, to `sparsity`.
  c.prune = prune_lib.section()
  # Knowledge distillation (accel/train/distill.py): a finished run's
  # workdir as teacher ('' = off), the soft targets' temperature and the
  # soft term's weight alpha.
  c.distill = ml_collections.ConfigDict(dict(distill_lib.DEFAULTS))
  # Scale (accel.parallel): mesh axes and sizes (-1: the devices left), the
  # logical-name -> mesh-axis rules, how much of the parameter bytes may be
  # replicated when the mesh has fsdp/tensor axes, and the dtype policy.
  c.mesh = parallel.DEFAULT_MESH
  c.axis_rules = parallel.DEFAULT_AXIS_RULES
  c.max_replicated_share = 0.5
  c.precision = ml_collections.ConfigDict(dict(precision_lib.DEFAULTS))
  return c


def selection_section(**overrides) -> ml_collections.ConfigDict:
  """Scored batch formation (accel.selection); scorer 'none' is off.

  scorer: none | loss | grad_norm_bound | reducible_loss | attention |
  uniform | stale_loss (each example's last training loss, no scoring
  pass; staleness_steps: how long an entry is trusted, 0 = two passes
  over the data);
  method: topk | sample | importance | rank (rank_pressure: the highest
  over the lowest probability) | uniform; prefer: high | low (low selects
  the lowest scores: with the attention scorer, drops suspected corrupted
  labels); drop_above_chance: with a loss scorer, prefer low and top-k,
  drops only candidates whose loss exceeds that multiple of log(classes);
  with prefer high (top-k or rank) takes them last, selecting the highest
  losses below that line (0 = off); ratio: candidates per
  selected example; warmup_steps: plain batches before selection starts;
  controller: auto | off | progress | variance, the break-even controller
  (accel.selection.controller) that switches selection off while it does
  not pay, deciding every controller_window steps (0 = a 50th of the run)
  with controller_margin and (progress rule) by controller_z standard
  errors of its probe, switching on only after controller_confirm
  probes in a row find that it pays, each probe averaging the losses of a
  fixed probe batch less its highest controller_probe_trim share, each
  first capped at controller_probe_clip times log(classes) (0 = not
  capped), drawn from the training split (controller_probe "train") or
  held out of training ("heldout"); controller_ratios: cheaper candidate
  ratios (decreasing, below ratio) the controller tries, each on the first
  candidates, before it turns selection off (() = none);
  score_dtype: float32 | bfloat16, the
  scoring pass's compute dtype;
  temperature, min_prob: the sampling distribution; class_rebalance:
  power of the inverse class frequency that weights scores (0 = off);
  class_quota: places guaranteed per class; irreducible_table: the
  reducible_loss scorer's file; reference_per_class,
  prototype_temperature: the attention scorer's reference set and
  sharpness; groups: 0 = each batch shard of the mesh
  selects its own share (no communication), 1 = one global selection,
  g = g equal groups.
  """
  _check_selection_keys(overrides)
  return ml_collections.ConfigDict({**selection.DEFAULTS, **overrides})


def _check_selection_keys(keys) -> None:
  unknown = sorted(set(keys) - set(selection.DEFAULTS))
  if unknown:
    raise ConfigError(f"Unknown selection option {unknown[0]!r}. Accepted "
                      f"options: {sorted(selection.DEFAULTS)}.")


def parse_variant(arg: str, names: Sequence[str] = (),
                  options: Sequence[str] = ()
                  ) -> tuple[set[str], dict[str, str]]:
  """The variants after `config.py:` (comma-separated): the plain `names`
  given and the `key=value` options, as (set of names, {key: value}).

  A name or key that the config file does not list is an error naming the
  ones it does (with a did-you-mean), so a typo never runs the default job.
  """
  given = [v for v in (arg or "").split(",") if v]
  found, values = set(), {}
  known = [*names, *(f"{k}=..." for k in options)]
  for v in given:
    key, eq, value = v.partition("=")
    if (eq and key in options) or (not eq and key in names):
      if eq:
        values[key] = value
      else:
        found.add(key)
      continue
    pool = list(options) if eq else list(names) + list(options)
    close = difflib.get_close_matches(key, pool, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"Unknown config variant {v!r} (after the colon in --config)."
        f"{hint} This config knows: {', '.join(known) or 'no variants'}.")
  return found, values


def shrink_for_debug(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The `debug` variant: a few steps on a slice of the test set, seconds."""
  c.total_steps, c.log_every = 20, 5
  c.eval_every, c.checkpoint_every = 10, 10
  c.eval_max_examples = 256
  c.optim.warmup_steps = min(c.optim.warmup_steps, 2)
  return c


def data_section(name: str, **overrides) -> ml_collections.ConfigDict:
  return section(data.SOURCES, name, **overrides)


def model_section(name: str, **overrides) -> ml_collections.ConfigDict:
  return section(models.MODELS, name, **overrides)


def section(reg: registry.Registry, name: str,
            **overrides) -> ml_collections.ConfigDict:
  """A `{name, **every option}` section for the builder `name` in `reg`.

  Listing every option with its default lets any of them be overridden from
  the command line (`--config.model.dropout=0.1`) under lock_config, while a
  misspelt one still fails.
  """
  options = registry.option_defaults(reg.get(name))
  registry.check_options(reg.get(name), overrides, f"{reg.kind} {name!r}")
  options.update(overrides)
  return ml_collections.ConfigDict({"name": name, **options})


def optim_section(name: str, **overrides) -> ml_collections.ConfigDict:
  """Like `section`, for optimizers: the shared keys plus the optimizer's."""
  fn = optim.OPTIMIZERS.get(name)
  options = registry.option_defaults(fn)
  options.update(optim.factory.COMMON_DEFAULTS)
  accepted = set(options)
  unknown = sorted(set(overrides) - accepted)
  if unknown:
    raise ConfigError(f"Unknown option {unknown[0]!r} for optimizer {name!r}. "
                      f"Accepted options: {sorted(accepted)}.")
  options.update(overrides)
  return ml_collections.ConfigDict({"name": name, **options})


def validate(config) -> None:
  """Raises ValueError for an unknown top-level key or an impossible value."""
  known = set(base_config().keys())
  for key in config.keys():
    if key not in known:
      close = difflib.get_close_matches(key, known, n=1)
      hint = f" Did you mean {close[0]!r}?" if close else ""
      raise ConfigError(f"Unknown config key {key!r}.{hint} Known keys: "
                        f"{sorted(known)}.")
  for key in ("total_steps", "batch_size", "eval_batch_size", "log_every"):
    if config[key] <= 0:
      raise ConfigError(f"config.{key} must be positive, got {config[key]}.")
  for key in ("eval_every", "checkpoint_every"):
    if config[key] < 0:
      raise ConfigError(f"config.{key} must be >= 0, got {config[key]}.")
  for key in ("data", "model", "optim"):
    if "name" not in config[key]:
      raise ConfigError(f"config.{key} needs a 'name' key.")
  _check_selection_keys(config.selection.keys())
  if config.remat not in (*models.remat.POLICIES, "auto"):
    raise ConfigError(f"config.remat must be one of "
                      f"{(*models.remat.POLICIES, 'auto')}, got "
                      f"{config.remat!r}.")
  prune_lib.check(config.prune, config.total_steps)
  if config.memory_budget_mb < 0:
    raise ConfigError("config.memory_budget_mb must be >= 0 (0: no budget), "
                      f"got {config.memory_budget_mb}.")
  distill_lib.check_section(config.distill)
  parallel.mesh.check_mesh_axes(config.mesh)
  parallel.mesh.check_axis_rules(config.axis_rules)
  precision_lib.policy(config.precision)
  if not 0 <= config.max_replicated_share <= 1:
    raise ConfigError("config.max_replicated_share is a share of the "
                      f"parameter bytes in [0, 1], got "
                      f"{config.max_replicated_share}.")


def describe(config, prefix: str = "config") -> str:
  """Every key of `config`, one a line: `--config.KEY=VALUE  (type)`, the
  form that overrides it on the command line."""
  lines = []
  for key in sorted(config.keys()):
    value = config[key]
    name = f"{prefix}.{key}"
    if isinstance(value, ml_collections.ConfigDict):
      lines.append(describe(value, name))
    else:
      lines.append(f"--{name}={value!r}  ({type(value).__name__})")
  return "\n".join(lines)


def load_file(path_and_variant: str) -> ml_collections.ConfigDict:
  """`get_config(variant)` of a config file given as `path.py[:variant]`."""
  from ml_collections.config_flags import config_flags  # pylint: disable=g-import-not-at-top
  path = path_and_variant.partition(":")[0]
  if not os.path.exists(path):
    raise MissingFileError(f"config file {path!r} does not exist.")
  return config_flags.ConfigFileFlagParser("config").parse(path_and_variant)
