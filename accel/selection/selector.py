"""The selection step as the train step runs it: score the candidates,
select, gather. `Selector(params, candidates, rng, step) -> (batch, metrics)`
is pure and jittable; `make_selector` builds it from a run's
`config.selection`.

Each step the input pipeline yields `ratio * batch_size` candidates; inside
the jitted train step a scorer (accel.selection.scorers) gives every
candidate a score, `select_batch` (accel.selection.select) picks
`batch_size` of them (and, for importance sampling, their weights), and the
update runs on the gathered batch. Shapes are static; nothing returns to
the host.

The `stale_loss` scorer (accel.selection.stale) scores without a forward
pass: it reads each candidate's last training loss from a table in the
train state, which the train step fills (`Selector.record`) from the
losses it computes anyway. `init_state` gives that table (None for the
other scorers, which keep no state).

`prefer="low"` selects the lowest scores instead of the highest: with the
attention scorer, whose high scores flag labels that disagree with the
example, it drops suspected corrupted labels rather than seeking them.
With a loss scorer (`loss`, `stale_loss`) and `drop_above_chance=f > 0`,
a low-preferring top-k drops only the candidates whose loss exceeds f
times the chance level log(C) (the model gives their label less than a
chance share: label-inconsistent), as many as there are up to the surplus
of candidates, and keeps the others in their (random) stream order: on
clean data, where few losses pass the line, the batch is close to a
uniform one. A high-preferring top-k or rank with `drop_above_chance`
selects in a band: the highest losses below the line (the hard examples
whose labels the model does not contradict), the ones above it last, so
that seeking hard examples does not seek corrupted labels.

On a device mesh the candidates are split over the batch shards, and by
default (`groups=0`) each shard selects its own k / shards of its own
N / shards candidates: no device talks to another, and every shard still
trains on an equal slice of the batch. The cost is that a rank (top-k, a
class quota, the Gumbel-top-k draw) is taken within a shard, not over all
candidates: with top-k, a shard whose candidates are all easy still gives
its share. `groups=1` selects over all N candidates at once (the
candidates' scores and the chosen rows cross devices: an all-gather and a
gather per step); `groups=g` splits into g equal groups whatever the mesh,
so one device can reproduce a mesh's per-shard choice. Importance weights
stay unbiased per group, so their mean over groups is unbiased too.
"""

from __future__ import annotations

import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np

from accel.errors import ConfigError
from accel.parallel import sharding as sharding_lib
from accel.selection import controller as controller_lib
from accel.selection import scorers
from accel.selection import select
from accel.selection import stale

# config.selection; scorer "none" turns selection off.
DEFAULTS = {"scorer": "none", "method": "topk", "ratio": 4.0,
            "warmup_steps": 0, "temperature": 1.0, "min_prob": 0.0,
            "class_rebalance": 0.0, "class_quota": 0,
            "irreducible_table": "", "groups": 0,
            "reference_per_class": 8, "prototype_temperature": 0.1,
            "staleness_steps": 0, "rank_pressure": 10.0, "prefer": "high",
            "controller": "auto", "controller_window": 0,
            "controller_margin": 0.03, "controller_confirm": 2,
            "controller_z": 0.5,
            "controller_probe_trim": 0.25, "controller_probe": "train",
            "controller_probe_clip": 0.0, "controller_ratios": (),
            "score_dtype": "float32", "drop_above_chance": 0.0}
SCORE_DTYPES = ("float32", "bfloat16")
PREFER = ("high", "low")


class Selector:
  """Scores candidates, selects, gathers: `(params, candidates, rng, step)
  -> (batch, metrics)`, pure and jittable.

  During the first `warmup_steps` steps each group's first candidates (a
  uniform random batch: the stream is shuffled) are taken and nothing is
  scored. With a `mesh` whose batch shards divide `groups`, selection and
  gather run inside `jax.shard_map`, each shard on its own candidates.
  """

  def __init__(self, scorer, k: int, *, method: str, warmup_steps: int = 0,
               temperature: float = 1.0, min_prob: float = 0.0,
               class_weights=None, class_quota: int = 0,
               num_classes: int | None = None, groups: int = 1,
               mesh: jax.sharding.Mesh | None = None,
               batch_axes: tuple[str, ...] = (),
               staleness_steps: int | None = None,
               rank_pressure: float = 10.0, prefer: str = "high",
               drop_above: float | None = None):
    """`groups=0`: one group per batch shard of `mesh` (1 without one).
    `scorer=None` with `staleness_steps` scores from the stale-loss table
    (entries older than that many steps are not trusted). `drop_above`:
    with prefer="low", scores above it count as 1 and the others as 0
    (top-k then keeps the candidates below it in stream order); with
    prefer="high", scores above it count as -1, below every loss (the
    highest below it are selected first; an untrusted stale entry gets
    the highest of those)."""
    if (scorer is None) == (staleness_steps is None):
      raise ConfigError("A selector scores with a scorer or with the stale-"
                        "loss table (staleness_steps), not both or neither.")
    if prefer not in PREFER:
      raise ConfigError(f"prefer must be one of {PREFER}, got {prefer!r}.")
    shards = (1 if mesh is None
              else sharding_lib.axis_size(mesh, tuple(batch_axes) or None))
    groups = groups or shards
    if groups < 1 or k % groups:
      raise ConfigError(f"Selection in {groups} groups (groups=0 is one per "
                        "batch shard) needs a batch size divisible by them; "
                        f"got batch size {k}.")
    self.scorer, self.k, self.groups = scorer, k, groups
    self.method = method
    self.passive = False
    self._probs = functools.partial(select.sampling_probs,
                                    temperature=temperature,
                                    min_prob=min_prob)
    self.staleness_steps = staleness_steps
    self._sign = 1.0 if prefer == "high" else -1.0
    self.drop_above = drop_above
    self.warmup_steps = warmup_steps
    self.num_classes = num_classes
    self._select = functools.partial(
        select.select_batch, k=k // groups, method=method,
        temperature=temperature, min_prob=min_prob,
        class_weights=(None if class_weights is None
                       else jnp.asarray(class_weights, jnp.float32)),
        class_quota=class_quota, rank_pressure=rank_pressure)
    self._needs_labels = class_weights is not None or class_quota > 0
    self._mesh = mesh if shards > 1 and groups % shards == 0 else None
    self._axes = tuple(batch_axes)
    self.candidates = None  # None: all it is given (see with_ratio)

  def _grouped(self, scores_N, labels_N, candidates, keys_G, first):
    """Selection and gather within each of len(keys_G) equal groups; the
    indices returned are within each group."""
    g, n = keys_G.shape[0], scores_N.shape[0]
    grouped = lambda x: x.reshape((g, n // g) + x.shape[1:])
    idx_Gxk, w_Gxk = jax.vmap(
        lambda sc, key, y: self._select(sc, rng=key, labels_N=y),
        in_axes=(0, 0, 0 if self._needs_labels else None))(
            grouped(scores_N), keys_G,
            grouped(labels_N) if self._needs_labels else None)
    head = jnp.arange(idx_Gxk.shape[1], dtype=jnp.int32)
    idx_Gxk = jnp.where(first, head, idx_Gxk)
    w_Gxk = jnp.where(first, 1.0, w_Gxk)
    take = jax.vmap(lambda v, i: v[i])
    rows = idx_Gxk.size
    batch = {key: take(grouped(v), idx_Gxk).reshape((rows,) + v.shape[1:])
             for key, v in candidates.items()}
    batch["weight"] = w_Gxk.reshape(rows)
    return batch, idx_Gxk

  def passive_copy(self) -> "Selector":
    """This selector switched off: each group's first candidates (a
    uniform batch) are trained on and nothing is scored, as in the
    warm-up; it still records the stale-loss table. The break-even
    controller (accel.selection.controller) runs this one while selection
    does not pay."""
    off = copy.copy(self)
    off.passive = True
    return off

  def with_ratio(self, ratio: float) -> "Selector":
    """This selector on fewer candidates: each group's first share of
    them, `ratio` candidates per selected example (a cheaper scoring pass;
    the break-even controller's cheaper arms). The input pipeline still
    yields the configured candidates; the rest go unused."""
    n = int(round(ratio * self.k))
    if ratio < 1 or abs(n - ratio * self.k) > 1e-6 or n % self.groups:
      raise ConfigError(
          f"A candidate ratio must be >= 1 and give a whole number of "
          f"candidates divisible by the {self.groups} selection group(s) "
          f"at batch size {self.k}; got {ratio}.")
    cheaper = copy.copy(self)
    cheaper.candidates = n
    return cheaper

  def _fewer(self, candidates):
    """Each group's first `self.candidates // groups` candidates."""
    n, g = candidates["label"].shape[0], self.groups
    if self.candidates is None or self.candidates >= n:
      return candidates
    m = self.candidates // g
    return {key: v.reshape((g, n // g) + v.shape[1:])[:, :m].reshape(
        (g * m,) + v.shape[1:]) for key, v in candidates.items()}

  def init_state(self, num_examples: int):
    """The selection state a train state carries: the stale-loss table
    over `num_examples` training examples, or None."""
    if self.scorer is not None:
      return None
    return stale.init_table(num_examples)

  def record(self, table, batch, losses_B, step):
    """The state after training on `batch` (its `example_id`s) with
    per-example losses `losses_B` at `step` (unchanged without a table)."""
    if table is None:
      return None
    if "example_id" not in batch:
      raise ConfigError("The stale_loss scorer looks examples up by "
                        "'example_id', but the batch has only "
                        f"{sorted(batch)}.")
    return stale.record(table, batch["example_id"],
                        jax.lax.stop_gradient(losses_B), step)

  def _scores(self, params, candidates, step, table):
    band = self.drop_above is not None and self._sign > 0
    below = lambda loss: jnp.where(loss > self.drop_above, -1.0, loss)
    if self.scorer is not None:
      raw = jax.lax.stop_gradient(self.scorer(params, candidates))
      if band:
        raw = below(raw)
    elif table is None:
      raise ConfigError("The stale_loss scorer needs its table: pass the "
                        "train state's `selection` (Selector.init_state).")
    else:
      if band:  # before the untrusted fill, which then stays in the band
        table = table._replace(loss_N=below(table.loss_N))
      # An untrusted candidate gets the score most readily selected.
      raw = stale.scores(
          table, candidates["example_id"], step, self.staleness_steps,
          self.groups, untrusted="highest" if self._sign > 0 else "lowest")
    if self.drop_above is not None and not band:
      raw = (raw > self.drop_above).astype(jnp.float32)
    return self._sign * raw

  def __call__(self, params, candidates, rng, step, table=None):
    """(batch, metrics); `table` is the train state's selection state
    (needed by the stale_loss scorer, ignored by the others)."""
    n, g = candidates["label"].shape[0], self.groups
    if n % g:
      raise ConfigError(f"Selection in {g} groups needs a candidate batch "
                        f"divisible by them; got {n} candidates.")
    candidates = self._fewer(candidates)
    n = candidates["label"].shape[0]
    score = lambda: self._scores(params, candidates, step, table)
    if self.passive:
      first, scores_N = jnp.bool_(True), jnp.zeros((n,))
    elif self.warmup_steps > 0:
      first = step < self.warmup_steps
      scores_N = jax.lax.cond(first, lambda: jnp.zeros((n,)), score)
    else:
      first, scores_N = jnp.bool_(False), score()
    args = (scores_N, candidates["label"], candidates,
            jax.random.split(rng, g), first)
    if self._mesh is None:
      batch, idx_Gxk = self._grouped(*args)
    else:
      rows = jax.sharding.PartitionSpec(self._axes)
      batch, idx_Gxk = jax.shard_map(
          self._grouped, mesh=self._mesh,
          in_specs=(rows, rows, rows, rows, jax.sharding.PartitionSpec()),
          out_specs=rows)(*args)
    idx_k = (idx_Gxk + (n // g) * jnp.arange(g)[:, None]).reshape(self.k)
    return batch, self.metrics(candidates, batch, scores_N, idx_k, first)

  def _variance_reduction(self, scores_N, first):
    """Katharopoulos & Fleuret's tau of this step's importance draw (mean
    over groups; 1 while nothing is selected), reading the scores as
    gradient-norm bounds."""
    scores_GxM = scores_N.reshape(self.groups, -1)
    tau_G = jax.vmap(lambda sc: select.variance_reduction(
        jnp.maximum(sc, 0.0), self._probs(sc)))(scores_GxM)
    return jnp.where(first, 1.0, tau_G.mean())

  def metrics(self, candidates, batch, scores_N, idx_k, first=False):
    # Arrays under "hist/" go to TensorBoard as histograms, not scalars.
    out = {"hist/selection/scores": scores_N,
           "selection/on": 1.0 - jnp.asarray(first, jnp.float32),
           "selection/score_mean_candidates": scores_N.mean(),
           "selection/score_mean_selected": scores_N[idx_k].mean(),
           "selection/weight_max": batch["weight"].max(),
           "selection/ratio": jnp.float32(scores_N.shape[0] / self.k)}
    if self.method == "importance":
      out["selection/variance_reduction"] = self._variance_reduction(
          scores_N, first)
    for q in (10, 50, 90):
      out[f"selection/score_p{q}"] = jnp.percentile(scores_N, q)
    if "noisy" in candidates:
      out["selection/noisy_share_candidates"] = candidates["noisy"].mean()
      out["selection/noisy_share_selected"] = batch["noisy"].mean()
    labels = batch["label"]
    if self.num_classes and labels.ndim == 1 and self.num_classes <= 32:
      share_C = jnp.bincount(labels, length=self.num_classes) / labels.shape[0]
      for c in range(self.num_classes):
        out[f"selection/class_share/{c}"] = share_C[c]
    return out


def candidate_batch_size(section, batch_size: int) -> int:
  """Examples per step the input pipeline yields: the candidates, or
  `batch_size` when the selection `section` is off."""
  if section.scorer == "none":
    return batch_size
  return int(section.ratio * batch_size)


def make_selector(section, *, batch_size: int, seed: int, source, model,
                  mesh=None, batch_axes: tuple[str, ...] = (),
                  irreducible_N=None) -> Selector | None:
  """The selector that `section` (a run's `config.selection`) describes, or
  None when it is off.

  Args:
    section: the selection options (DEFAULTS' keys).
    batch_size: examples trained on per step.
    seed: draws the attention scorer's reference set.
    source: the training data (class counts, the reference set).
    model: the model the scorers run.
    mesh, batch_axes: where the candidates are split; with `groups=0` each
      batch shard selects on its own.
    irreducible_N: the reducible_loss scorer's table (accel.selection.tables),
      one entry per training example.
  """
  c = section
  if c.scorer == "none":
    return None
  if c.ratio < 1:
    raise ConfigError(f"config.selection.ratio is candidates per selected "
                      f"example, >= 1; got {c.ratio}.")
  if c.method not in select.METHODS:
    raise ConfigError(f"Unknown config.selection.method {c.method!r}; "
                      f"expected one of {select.METHODS}.")
  if c.prefer not in PREFER:
    raise ConfigError(f"config.selection.prefer is 'high' (select high "
                      f"scores) or 'low'; got {c.prefer!r}.")
  if c.controller != "off":
    controller_lib.rule_for(c.method, c.controller)  # names a bad one
  if c.controller_window < 0 or c.controller_margin < 0:
    raise ConfigError("config.selection.controller_window (0: a 50th of the "
                      "run) and controller_margin must be >= 0; got "
                      f"{c.controller_window} and {c.controller_margin}.")
  if not 0.0 <= c.controller_probe_trim < 1.0:
    raise ConfigError("config.selection.controller_probe_trim (the share of "
                      "the probe's highest losses left out) must be in "
                      f"[0, 1); got {c.controller_probe_trim}.")
  if c.controller_probe_clip < 0 or (
      c.controller_probe_clip and source.spec.task != "classification"):
    raise ConfigError("config.selection.controller_probe_clip (0: off) caps "
                      "each probe loss at that multiple of the chance level "
                      "log(C): it must be >= 0 and needs a classification "
                      f"task; got {c.controller_probe_clip} on a "
                      f"{source.spec.task} task.")
  if c.controller_probe not in controller_lib.PROBES:
    raise ConfigError(f"config.selection.controller_probe is one of "
                      f"{controller_lib.PROBES}; got {c.controller_probe!r}.")
  if c.controller_z < 0:
    raise ConfigError("config.selection.controller_z (standard errors by "
                      "which selecting must beat plain windows) must be "
                      f">= 0; got {c.controller_z}.")
  if c.controller_confirm < 1:
    raise ConfigError("config.selection.controller_confirm (probes that "
                      "must agree before selection switches on) must be "
                      f">= 1; got {c.controller_confirm}.")
  ratios = tuple(float(r) for r in c.controller_ratios)
  if ratios and (c.controller == "off" or any(
      not 1.0 <= r < c.ratio for r in ratios)
                 or list(ratios) != sorted(set(ratios), reverse=True)):
    raise ConfigError(
        "config.selection.controller_ratios are the cheaper candidate "
        "ratios the break-even controller falls back to: each in [1, ratio="
        f"{c.ratio}), decreasing, with the controller on; got {ratios} with "
        f"controller {c.controller!r}.")
  if c.drop_above_chance < 0 or (c.drop_above_chance and (
      c.scorer not in ("loss", "stale_loss")
      or (c.prefer, c.method) not in (("low", "topk"), ("high", "topk"),
                                      ("high", "rank"))
      or source.spec.task != "classification")):
    raise ConfigError(
        "config.selection.drop_above_chance (0: off) drops the candidates "
        "whose loss exceeds that multiple of the chance level log(C): it "
        "needs scorer 'loss' or 'stale_loss', prefer='low' with method "
        "'topk' or prefer='high' with 'topk' or 'rank', and a "
        f"classification task; got drop_above_chance="
        f"{c.drop_above_chance}, scorer {c.scorer!r}, prefer {c.prefer!r}, "
        f"method {c.method!r}, task {source.spec.task!r}.")
  if c.staleness_steps < 0:
    raise ConfigError("config.selection.staleness_steps must be >= 0 (0: "
                      "two passes over the training data); got "
                      f"{c.staleness_steps}.")
  spec = source.spec
  check_task(c, spec)
  class_weights = None
  if c.class_rebalance:
    labels = _train_arrays(source, "class_rebalance")["label"]
    counts = np.bincount(labels, minlength=spec.num_classes)
    class_weights = select.class_weights_from_counts(counts,
                                                     c.class_rebalance)
  if c.scorer == "reducible_loss" and irreducible_N is None:
    raise ConfigError("config.selection.scorer='reducible_loss' needs "
                      "config.selection.irreducible_table (a file made by "
                      "launch/irreducible_loss.py).")
  if c.groups < 0:
    raise ConfigError("config.selection.groups is 0 (one group per batch "
                      "shard), 1 (global) or a number of groups; got "
                      f"{c.groups}.")
  reference = None
  if c.scorer == "attention":
    if c.prototype_temperature <= 0:
      raise ConfigError("config.selection.prototype_temperature must be > 0, "
                        f"got {c.prototype_temperature}.")
    train = _train_arrays(source, "the attention scorer")
    idx = scorers.reference_set(train["label"], c.reference_per_class,
                                spec.num_classes, seed)
    reference = {"inputs": train["inputs"][idx], "label": train["label"][idx]}
  staleness = None
  if c.scorer == "stale_loss":
    # Default: an entry is trusted for two passes over the training data.
    staleness = int(c.staleness_steps) or max(1, int(
        2 * spec.num_train / candidate_batch_size(c, batch_size)))
    scorer = None
  else:
    scorer = scorers.make_scorer(
        c.scorer, scoring_model(model, c.score_dtype),
        irreducible_N=irreducible_N, reference=reference,
        num_classes=spec.num_classes,
        prototype_temperature=c.prototype_temperature)
  classification = spec.task == "classification"
  selector = Selector(  # raises when the groups do not divide the batch
      scorer, batch_size, method=c.method, groups=c.groups,
      mesh=mesh, batch_axes=batch_axes, warmup_steps=c.warmup_steps,
      temperature=c.temperature, min_prob=c.min_prob,
      class_weights=class_weights, class_quota=c.class_quota,
      num_classes=spec.num_classes if classification else None,
      staleness_steps=staleness, rank_pressure=c.rank_pressure,
      prefer=c.prefer, drop_above=(
          float(c.drop_above_chance) * float(np.log(spec.num_classes))
          if c.drop_above_chance else None))
  n = candidate_batch_size(c, batch_size)
  if n % selector.groups:
    raise ConfigError(
        f"Selection in {selector.groups} groups (config.selection.groups="
        f"{c.groups}; 0 is one per batch shard) needs a candidate batch "
        f"divisible by them; got {n} candidates.")
  for r in ratios:
    selector.with_ratio(r)  # raises on a ratio the groups cannot split
  return selector


def scoring_model(model, score_dtype: str):
  """`model` computing in `score_dtype` (its parameters are cast where they
  are used, so the train state's float32 ones serve it); scores come back
  in float32. bfloat16 is meant for hardware with bfloat16 units: on
  XLA:CPU it measured no cheaper (benchmarks/selection_bf16)."""
  if score_dtype not in SCORE_DTYPES:
    raise ConfigError(f"config.selection.score_dtype must be one of "
                      f"{SCORE_DTYPES}, got {score_dtype!r}.")
  if score_dtype == "float32":
    return model
  if getattr(model, "dtype", None) is None:
    raise ConfigError(f"config.selection.score_dtype={score_dtype!r} needs "
                      f"a model with a compute dtype; "
                      f"{type(model).__name__} has none.")
  return model.clone(dtype=jnp.dtype(score_dtype))


def check_task(selection_config, spec) -> None:
  """Raises ValueError when `config.selection` asks for class labels (class
  rebalancing, a class quota, the attention scorer's class prototypes) and
  the data set `spec` describes has none."""
  c = selection_config
  if spec.task == "classification":
    return
  if c.class_rebalance or c.class_quota:
    raise ConfigError("Class rebalancing needs a classification data set; "
                      f"{spec.name!r} is a {spec.task!r} task.")
  if c.scorer == "attention":
    raise ConfigError("The attention scorer needs a classification data "
                      f"set; {spec.name!r} is a {spec.task!r} task.")


def _train_arrays(source, what: str) -> dict[str, np.ndarray]:
  """The training split's arrays; raises ValueError naming `what` needs
  them when the source does not hold them in memory."""
  arrays = getattr(source, "arrays", None)
  if arrays is None:
    raise ConfigError(f"{what} needs the training labels in memory; the "
                      f"{source.spec.name!r} source does not hold them.")
  return arrays("train")
