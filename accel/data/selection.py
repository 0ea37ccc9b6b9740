"""Scored batch formation: score a candidate batch with the model, then train
on the examples worth learning.

Each step draws `ratio * batch_size` candidates; inside the same jitted
train step a scorer gives every candidate a score, `select_batch` picks
`batch_size` of them (and, for importance sampling, their weights), and the
update runs on the gathered batch. Shapes are static; nothing returns to
the host.

`select_batch(scores_N, k, *, rng, method, ...)`:
  topk        the k highest scores; weights 1.
  sample      k distinct candidates, drawn one after another without
              replacement with probability p = (1 - min_prob) *
              softmax(scores / temperature) + min_prob / N (Gumbel-top-k);
              every candidate keeps at least min_prob / N per draw.
              Weights 1.
  importance  drawn as `sample`, with weights w_i = k / (N q_i), where q_i is
              the candidate's inclusion probability given the (k+1)-th
              largest Gumbel key (priority-sampling estimator, Duffield et
              al. 2007; Kool et al. 2019): (1/k) sum_i w_i loss_i is an
              unbiased estimate of the candidate-batch mean loss. The train
              step divides the weighted loss by k (the row count), not by
              the weights' sum, to keep it unbiased.
  uniform     k distinct candidates uniformly (the control); weights 1.

Class rebalancing: `class_weights` (one per class) enter as
score + temperature * log(class_weight): for the sampling methods that
multiplies a class's probabilities by its weight; top-k ranks with the
same shift. `class_quota=m` guarantees each class min(m, its candidates)
places (the best-keyed of its candidates are taken first), for topk,
sample and uniform.

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

Scorers, `scorer(params, batch) -> scores_N` (eval-mode forward, no
gradient): `loss` (per-example cross-entropy), `grad_norm_bound` (norm of
the loss gradient with respect to the logits, ||softmax - onehot||, which
bounds the last layer's gradient norm up to the norm of its input;
Katharopoulos & Fleuret 2018), `reducible_loss` (RHO-LOSS, Mindermann et
al. 2022: loss minus an irreducible loss looked up by `example_id` in a
table that `accel.data.irreducible` makes), `attention` (below), `uniform`
(zeros).

The attention scorer asks whether a candidate's representation agrees with
its label, as judged by a reference set rather than by the classifier head.
The reference is `reference_per_class` examples of each class, set aside
from the training data once (`make_selector`, a fixed seed). Every step the
model embeds them and the candidates: the input of its classifier head,
L2-normalised. The reference embeddings of each class are averaged into a
prototype, and each candidate attends over the class prototypes: a_c =
softmax_c(cos(f, p_c) / prototype_temperature). Its score is -log a_y: the
cross-entropy of this attention against its own label y. Nothing in the
scorer is trained; it is a nearest-class-mean check of the label in the
model's feature space. A clean example attends to its own class's
prototype (low score); one far from it (hard, ambiguous, or wrongly
labelled) attends elsewhere (high score). Because the labels it trusts are
the reference set's, it is informative before the model has learnt
anything: a random network keeps the inputs' cluster structure. On the
synthetic clusters with 30% corrupted labels it ranks a corrupted label
above a clean one with probability 0.86 at initialisation, where the loss
is at chance (0.44), and 0.91 after 150 AdamW steps (the loss: 0.97;
tests/test_selection.py). Like the loss, top-k on it seeks out corrupted
labels.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel.parallel import sharding as sharding_lib

METHODS = ("topk", "sample", "importance", "uniform")
SCORERS = ("loss", "grad_norm_bound", "reducible_loss", "attention",
           "uniform")

# config.selection; scorer "none" turns selection off.
DEFAULTS = {"scorer": "none", "method": "topk", "ratio": 4.0,
            "warmup_steps": 0, "temperature": 1.0, "min_prob": 0.0,
            "class_rebalance": 0.0, "class_quota": 0,
            "irreducible_table": "", "groups": 0,
            "reference_per_class": 8, "prototype_temperature": 0.1}
_BIG = 1e9


def _gumbel_keys(rng, log_p_N):
  return log_p_N + jax.random.gumbel(rng, log_p_N.shape, jnp.float32)


def _quota_bonus(keys_N, labels_N, quota: int):
  """+_BIG on each class's `quota` best-keyed candidates.

  O(N^2) comparisons: fine for candidate batches of a few thousand.
  """
  # rank_i = how many same-class candidates have a larger key (ties by index).
  n = keys_N.shape[0]
  ahead_NxN = (keys_N[None, :] > keys_N[:, None]) | (
      (keys_N[None, :] == keys_N[:, None])
      & (jnp.arange(n)[None, :] < jnp.arange(n)[:, None]))
  same_NxN = labels_N[None, :] == labels_N[:, None]
  rank_N = jnp.sum(ahead_NxN & same_NxN, axis=1)
  return jnp.where(rank_N < quota, _BIG, 0.0)


def select_batch(scores_N: jax.Array, k: int, *, rng: jax.Array,
                 method: str = "topk", labels_N: jax.Array | None = None,
                 class_weights: jax.Array | None = None,
                 temperature: float = 1.0, min_prob: float = 0.0,
                 class_quota: int = 0) -> tuple[jax.Array, jax.Array]:
  """Indices (k,) int32 into the candidates and weights (k,) float32.

  See the module doc for the methods. `labels_N` is needed for
  `class_weights` and `class_quota`.
  """
  if method not in METHODS:
    raise ValueError(f"Unknown selection method {method!r}; expected one of "
                     f"{METHODS}.")
  n = scores_N.shape[0]
  if not 0 < k <= n:
    raise ValueError(f"Cannot select k={k} of {n} candidates; need "
                     f"0 < k <= {n}.")
  if temperature <= 0:
    raise ValueError(f"temperature must be > 0, got {temperature}.")
  if not 0.0 <= min_prob <= 1.0:
    raise ValueError(f"min_prob must be in [0, 1], got {min_prob}.")
  if (class_weights is not None or class_quota) and labels_N is None:
    raise ValueError("class_weights and class_quota need labels_N.")
  if class_quota and method == "importance":
    raise ValueError("class_quota would bias the importance weights; use "
                     "class_weights with method='importance'.")
  scores_N = jnp.nan_to_num(scores_N.astype(jnp.float32), nan=0.0,
                            posinf=_BIG, neginf=-_BIG)
  if class_weights is not None:
    cw = jnp.asarray(class_weights, jnp.float32)
    scores_N = scores_N + temperature * jnp.log(cw[labels_N])
  if method == "topk":
    keys_N = scores_N
  elif method == "uniform":
    keys_N = jax.random.uniform(rng, (n,))
  else:
    p_N = ((1.0 - min_prob) * jax.nn.softmax(scores_N / temperature)
           + min_prob / n)
    log_p_N = jnp.log(p_N)
    keys_N = _gumbel_keys(rng, log_p_N)
  if class_quota:
    keys_N = keys_N + _quota_bonus(keys_N, labels_N, class_quota)
  if method != "importance":
    _, idx_k = jax.lax.top_k(keys_N, k)
    return idx_k.astype(jnp.int32), jnp.ones((k,), jnp.float32)
  if k == n:
    return jnp.arange(n, dtype=jnp.int32), jnp.ones((n,), jnp.float32)
  top, idx = jax.lax.top_k(keys_N, k + 1)
  kappa, idx_k = top[k], idx[:k]
  # P(log p_i + Gumbel > kappa) = 1 - exp(-exp(log p_i - kappa)).
  q_k = -jnp.expm1(-jnp.exp(log_p_N[idx_k] - kappa))
  return idx_k.astype(jnp.int32), (k / (n * q_k)).astype(jnp.float32)


# --- Scorers ----------------------------------------------------------------

def _logits_and_labels(model, params, batch):
  logits = model.apply({"params": params}, batch["inputs"], train=False)
  labels = batch["label"]
  b = labels.shape[0]
  return (logits.reshape(b, -1, logits.shape[-1]).astype(jnp.float32),
          labels.reshape(b, -1), batch.get("label_mask"))


def _per_example(values_BxT, mask):
  if mask is None:
    return values_BxT.mean(axis=1)
  m = mask.reshape(values_BxT.shape).astype(jnp.float32)
  return (values_BxT * m).sum(1) / jnp.maximum(m.sum(1), 1.0)


def loss_scorer(model) -> Callable[[Any, dict[str, jax.Array]], jax.Array]:
  def score(params, batch):
    logits, labels, mask = _logits_and_labels(model, params, batch)
    return _per_example(optax.softmax_cross_entropy_with_integer_labels(
        logits, labels), mask)
  return score


def grad_norm_bound_scorer(model):
  def score(params, batch):
    logits, labels, mask = _logits_and_labels(model, params, batch)
    diff = jax.nn.softmax(logits) - jax.nn.one_hot(labels, logits.shape[-1])
    return _per_example(jnp.linalg.norm(diff, axis=-1), mask)
  return score


def reducible_loss_scorer(model, irreducible_N: jax.Array):
  """Training loss minus the irreducible loss of the same example."""
  loss = loss_scorer(model)
  table = jnp.asarray(irreducible_N, jnp.float32)

  def score(params, batch):
    if "example_id" not in batch:
      raise ValueError("The reducible_loss scorer looks examples up by "
                       "'example_id', but the batch has only "
                       f"{sorted(batch)}.")
    return loss(params, batch) - table[batch["example_id"]]
  return score


def head_features(model, params, inputs) -> tuple[jax.Array, jax.Array]:
  """(logits, the classifier head's input as [B, D] float32)."""
  logits, state = model.apply({"params": params}, inputs, train=False,
                              mutable=["intermediates"])
  found = [v for path, v in flax.traverse_util.flatten_dict(
      state.get("intermediates", {})).items() if path[-1] == "features"]
  if len(found) != 1:
    raise ValueError(
        f"The attention scorer reads the input of the model's classifier "
        f"head; {type(model).__name__} reports {len(found)} such inputs "
        "(classification models end in accel.models.layers.ClassifierHead).")
  features = found[0][0]
  return logits, features.reshape(features.shape[0], -1).astype(jnp.float32)


def prototype_attention(features_BxD, ref_features_RxD, ref_labels_R,
                        num_classes: int, temperature: float) -> jax.Array:
  """[B, C] attention of each (normalised) feature over the normalised class
  means of the reference features."""
  unit = lambda x: x / jnp.maximum(
      jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-6)
  onehot_RxC = jax.nn.one_hot(ref_labels_R, num_classes)
  sums_CxD = onehot_RxC.T @ unit(ref_features_RxD)
  protos_CxD = unit(sums_CxD / jnp.maximum(onehot_RxC.sum(0), 1.0)[:, None])
  return jax.nn.softmax(unit(features_BxD) @ protos_CxD.T / temperature,
                        axis=-1)


def attention_scorer(model, reference: dict[str, np.ndarray],
                     num_classes: int, temperature: float = 0.1):
  """-log attention of each candidate to its own class's prototype (module
  doc). `reference`: {"inputs", "label"} arrays of the reference set."""
  ref_inputs = jnp.asarray(reference["inputs"])
  ref_labels = jnp.asarray(reference["label"], jnp.int32)

  def score(params, batch):
    _, feats = head_features(model, params, batch["inputs"])
    _, ref_feats = head_features(model, params, ref_inputs)
    a_BxC = prototype_attention(feats, ref_feats, ref_labels, num_classes,
                                temperature)
    own = jnp.take_along_axis(a_BxC, batch["label"][:, None], axis=1)[:, 0]
    return -jnp.log(jnp.maximum(own, 1e-12))
  return score


def reference_set(labels_N: np.ndarray, per_class: int, num_classes: int,
                  seed: int = 0) -> np.ndarray:
  """Indices of `per_class` examples of each class (fewer where a class has
  fewer), drawn without replacement with a fixed seed."""
  if per_class < 1:
    raise ValueError(f"reference_per_class must be >= 1, got {per_class}.")
  rng = np.random.default_rng(seed)
  idx = []
  for c in range(num_classes):
    members = np.flatnonzero(labels_N == c)
    idx.extend(rng.choice(members, min(per_class, len(members)),
                          replace=False))
  if not idx:
    raise ValueError("The reference set is empty: no training labels.")
  return np.sort(np.asarray(idx))


def uniform_scorer(model):
  del model
  return lambda params, batch: jnp.zeros((batch["label"].shape[0],))


def make_scorer(name: str, model, *, irreducible_N=None, reference=None,
                num_classes=None, prototype_temperature: float = 0.1):
  if name == "attention":
    if reference is None or num_classes is None:
      raise ValueError("The attention scorer needs a reference set and the "
                       "number of classes.")
    return attention_scorer(model, reference, num_classes,
                            prototype_temperature)
  if name == "loss":
    return loss_scorer(model)
  if name == "grad_norm_bound":
    return grad_norm_bound_scorer(model)
  if name == "uniform":
    return uniform_scorer(model)
  if name == "reducible_loss":
    if irreducible_N is None:
      raise ValueError("The reducible_loss scorer needs an irreducible-loss "
                       "table: set config.selection.irreducible_table to a "
                       "file made by launch/irreducible_loss.py.")
    return reducible_loss_scorer(model, irreducible_N)
  raise ValueError(f"Unknown scorer {name!r}; expected one of {SCORERS}.")


# --- The selection step as the train step uses it ---------------------------

def class_weights_from_counts(counts_C: np.ndarray, power: float
                              ) -> np.ndarray:
  """(count_c / mean count)^-power: 0 = off, 1 = inverse frequency."""
  counts = np.maximum(np.asarray(counts_C, np.float64), 1.0)
  return (counts / counts.mean()) ** (-power)


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
               batch_axes: tuple[str, ...] = ()):
    """`groups=0`: one group per batch shard of `mesh` (1 without one)."""
    shards = (1 if mesh is None
              else sharding_lib.axis_size(mesh, tuple(batch_axes) or None))
    groups = groups or shards
    if groups < 1 or k % groups:
      raise ValueError(f"Selection in {groups} groups (groups=0 is one per "
                       "batch shard) needs a batch size divisible by them; "
                       f"got batch size {k}.")
    self.scorer, self.k, self.groups = scorer, k, groups
    self.warmup_steps = warmup_steps
    self.num_classes = num_classes
    self._select = functools.partial(
        select_batch, k=k // groups, method=method, temperature=temperature,
        min_prob=min_prob,
        class_weights=(None if class_weights is None
                       else jnp.asarray(class_weights, jnp.float32)),
        class_quota=class_quota)
    self._needs_labels = class_weights is not None or class_quota > 0
    self._mesh = mesh if shards > 1 and groups % shards == 0 else None
    self._axes = tuple(batch_axes)

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

  def __call__(self, params, candidates, rng, step):
    n, g = candidates["label"].shape[0], self.groups
    if n % g:
      raise ValueError(f"Selection in {g} groups needs a candidate batch "
                       f"divisible by them; got {n} candidates.")
    score = lambda: jax.lax.stop_gradient(self.scorer(params, candidates))
    if self.warmup_steps > 0:
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
    return batch, self.metrics(candidates, batch, scores_N, idx_k)

  def metrics(self, candidates, batch, scores_N, idx_k):
    # Arrays under "hist/" go to TensorBoard as histograms, not scalars.
    out = {"hist/selection/scores": scores_N,
           "selection/score_mean_candidates": scores_N.mean(),
           "selection/score_mean_selected": scores_N[idx_k].mean(),
           "selection/weight_max": batch["weight"].max()}
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


def candidate_batch_size(config) -> int:
  """Examples per step the input pipeline yields: the candidates."""
  if config.selection.scorer == "none":
    return config.batch_size
  return int(config.selection.ratio * config.batch_size)


def make_selector(config, model, source, mesh=None,
                  batch_axes: tuple[str, ...] = ()) -> Selector | None:
  """The run's selector from `config.selection`, or None when it is off.

  `mesh` and `batch_axes`: where the candidates are split; with
  `config.selection.groups=0` each batch shard selects on its own.
  """
  c = config.selection
  if c.scorer == "none":
    return None
  if c.ratio < 1:
    raise ValueError(f"config.selection.ratio is candidates per selected "
                     f"example, >= 1; got {c.ratio}.")
  if c.method not in METHODS:
    raise ValueError(f"Unknown config.selection.method {c.method!r}; "
                     f"expected one of {METHODS}.")
  spec = source.spec
  classification = spec.task == "classification"
  check_task(c, spec)
  class_weights = None
  if c.class_rebalance:
    labels = _train_arrays(source, "class_rebalance")["label"]
    counts = np.bincount(labels, minlength=spec.num_classes)
    class_weights = class_weights_from_counts(counts, c.class_rebalance)
  table = None
  if c.scorer == "reducible_loss":
    from accel.data import irreducible  # pylint: disable=g-import-not-at-top
    if not c.irreducible_table:
      raise ValueError("config.selection.scorer='reducible_loss' needs "
                       "config.selection.irreducible_table (a file made by "
                       "launch/irreducible_loss.py).")
    table = irreducible.load_table(c.irreducible_table, source, config.data)
  if c.groups < 0:
    raise ValueError("config.selection.groups is 0 (one group per batch "
                     "shard), 1 (global) or a number of groups; got "
                     f"{c.groups}.")
  reference = None
  if c.scorer == "attention":
    if c.prototype_temperature <= 0:
      raise ValueError("config.selection.prototype_temperature must be > 0, "
                       f"got {c.prototype_temperature}.")
    train = _train_arrays(source, "the attention scorer")
    idx = reference_set(train["label"], c.reference_per_class,
                        spec.num_classes, config.seed)
    reference = {"inputs": train["inputs"][idx], "label": train["label"][idx]}
  scorer = make_scorer(c.scorer, model, irreducible_N=table,
                       reference=reference, num_classes=spec.num_classes,
                       prototype_temperature=c.prototype_temperature)
  selector = Selector(  # raises when the groups do not divide the batch
      scorer, config.batch_size, method=c.method, groups=c.groups,
      mesh=mesh, batch_axes=batch_axes, warmup_steps=c.warmup_steps,
      temperature=c.temperature, min_prob=c.min_prob,
      class_weights=class_weights, class_quota=c.class_quota,
      num_classes=spec.num_classes if classification else None)
  n = candidate_batch_size(config)
  if n % selector.groups:
    raise ValueError(
        f"Selection in {selector.groups} groups (config.selection.groups="
        f"{c.groups}; 0 is one per batch shard) needs a candidate batch "
        f"divisible by them; got {n} candidates.")
  return selector


def check_task(selection_config, spec) -> None:
  """Raises ValueError when `config.selection` asks for class labels (class
  rebalancing, a class quota, the attention scorer's class prototypes) and
  the data set `spec` describes has none."""
  c = selection_config
  if spec.task == "classification":
    return
  if c.class_rebalance or c.class_quota:
    raise ValueError("Class rebalancing needs a classification data set; "
                     f"{spec.name!r} is a {spec.task!r} task.")
  if c.scorer == "attention":
    raise ValueError("The attention scorer needs a classification data "
                     f"set; {spec.name!r} is a {spec.task!r} task.")


def _train_arrays(source, what: str) -> dict[str, np.ndarray]:
  """The training split's arrays; raises ValueError naming `what` needs
  them when the source does not hold them in memory."""
  arrays = getattr(source, "arrays", None)
  if arrays is None:
    raise ValueError(f"{what} needs the training labels in memory; the "
                     f"{source.spec.name!r} source does not hold them.")
  return arrays("train")
