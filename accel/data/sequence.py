"""Seeded synthetic sequence tasks for Transformers: associative recall and
an n-gram language.

A sequence lists `num_pairs` key-value pairs, then repeats one of the keys;
the answer is the value that key was paired with. Solving it needs attention
from the query back to the matching key (an induction-head-like circuit), so
it separates sequence models from bag-of-tokens ones.

Tokens: 0 is reserved, keys are 1..num_keys, values follow them.
  task="classification": inputs [2P+1] tokens, label = the answer's token id.
  task="lm": next-token prediction over the whole sequence (inputs = seq[:-1],
    label = seq[1:]); only the answer position counts (label_mask), since
    the other tokens are random and cannot be predicted.
  task="ngram": next-token prediction on a random order-`order` Markov chain
    over `vocab_size` tokens (token 0 unused): every context of `order`
    tokens has its own next-token distribution, drawn from a Dirichlet with
    `concentration` (small = peaked). Sequences hold `length` tokens, the
    first `order` uniform. Every target whose context is complete counts, so
    accuracy climbs smoothly (unigram, then bigram, then full-context
    statistics) towards the chain's own limit, the mean probability of the
    likeliest next token (`ngram_accuracy_limit`).
"""

import functools

import numpy as np

from accel.data import source
from accel.errors import ConfigError


def _sequences(rng, n, num_pairs, num_keys, num_values):
  keys_NxP = np.argsort(rng.random((n, num_keys)), axis=1)[:, :num_pairs] + 1
  values_NxP = rng.integers(0, num_values, (n, num_pairs)) + num_keys + 1
  which_N = rng.integers(0, num_pairs, n)
  rows = np.arange(n)
  query_N, answer_N = keys_NxP[rows, which_N], values_NxP[rows, which_N]
  pairs_NxL = np.stack([keys_NxP, values_NxP], axis=2).reshape(n, -1)
  seq = np.concatenate([pairs_NxL, query_N[:, None], answer_N[:, None]], 1)
  return seq.astype(np.int32)


def ngram_table(vocab_size: int, order: int, concentration: float,
                data_seed: int) -> np.ndarray:
  """Next-token probabilities [(vocab_size - 1) ** order, vocab_size] of the
  "ngram" task, row = the context's tokens (1..V-1) read as base-(V-1)."""
  rng = np.random.default_rng([data_seed, 1])
  k = vocab_size - 1
  probs = rng.dirichlet(np.full(k, concentration), size=k ** order)
  return np.concatenate([np.zeros((k ** order, 1)), probs], axis=1)


def ngram_accuracy_limit(table: np.ndarray) -> float:
  """The best expected next-token accuracy on the chain (contexts are close
  to uniform, so the plain mean over rows)."""
  return float(table.max(axis=1).mean())


def _ngram_sequences(rng, n, length, table, order):
  k = table.shape[1] - 1
  cdf = np.cumsum(table[:, 1:], axis=1)
  cdf[:, -1] = 1.0
  seq = np.zeros((n, length), np.int32)
  seq[:, :order] = rng.integers(1, k + 1, (n, order))
  for t in range(order, length):
    ctx = np.zeros(n, np.int64)
    for j in range(order):
      ctx = ctx * k + (seq[:, t - order + j] - 1)
    u = rng.random(n)
    seq[:, t] = 1 + (u[:, None] > cdf[ctx]).sum(axis=1)
  return seq


def _make_ngram(num_train, num_test, vocab_size, order, length,
                concentration, data_seed):
  if vocab_size < 3 or order < 1 or length <= order + 1:
    raise ConfigError(
        f"ngram task needs vocab_size >= 3, order >= 1 and length > order "
        f"+ 1; got vocab_size={vocab_size}, order={order}, length={length}.")
  if (vocab_size - 1) ** order > 2 ** 20:
    raise ConfigError(f"(vocab_size - 1) ** order = {(vocab_size - 1) ** order}"
                      f" contexts is over the 2**20 this table holds.")
  train, test = _ngram_splits(num_train, num_test, vocab_size, order, length,
                              concentration, data_seed)
  spec = source.DataSpec(
      name="ngram", task="lm", input_shape=(length - 1,),
      input_dtype="int32", num_classes=vocab_size, num_train=num_train,
      num_test=num_test, input_vocab_size=vocab_size)
  return source.ArraySource(spec, train, test)


@functools.lru_cache(maxsize=2)
def _ngram_splits(num_train, num_test, vocab_size, order, length,
                  concentration, data_seed):
  """Both splits, read-only; kept because sampling the chain token by token
  takes seconds at benchmark sizes and a benchmark builds it every trial."""
  table = ngram_table(vocab_size, order, concentration, data_seed)
  rng = np.random.default_rng(data_seed)

  def split(n):
    seq = _ngram_sequences(rng, n, length, table, order)
    label_mask = np.ones((n, length - 1), np.float32)
    label_mask[:, :order - 1] = 0.0  # targets whose context is incomplete
    return source.read_only({"inputs": seq[:, :-1], "label": seq[:, 1:],
                             "label_mask": label_mask})

  return split(num_train), split(num_test)


@source.SOURCES.register("sequence")
def make_sequence(task: str = "classification", num_train: int = 8192,
                  num_test: int = 1024, num_pairs: int = 8,
                  num_keys: int = 16, num_values: int = 16,
                  vocab_size: int = 64, order: int = 2, length: int = 65,
                  concentration: float = 0.05,
                  data_seed: int = 0) -> source.ArraySource:
  """Builds the task; arguments are described in the module docstring
  (vocab_size, order, length and concentration are the "ngram" task's)."""
  if task == "ngram":
    return _make_ngram(num_train, num_test, vocab_size, order, length,
                       concentration, data_seed)
  if task not in ("classification", "lm"):
    raise ConfigError(f"task must be 'classification', 'lm' or 'ngram', got "
                      f"{task!r}.")
  if num_pairs > num_keys:
    raise ConfigError(f"num_pairs ({num_pairs}) must be <= num_keys "
                      f"({num_keys}): keys in a sequence are distinct.")
  rng = np.random.default_rng(data_seed)
  vocab = 1 + num_keys + num_values

  def split(n):
    seq = _sequences(rng, n, num_pairs, num_keys, num_values)
    if task == "classification":
      return {"inputs": seq[:, :-1], "label": seq[:, -1]}
    label_mask = np.zeros_like(seq[:, 1:], dtype=np.float32)
    label_mask[:, -1] = 1.0
    return {"inputs": seq[:, :-1], "label": seq[:, 1:],
            "label_mask": label_mask}

  train, test = split(num_train), split(num_test)
  spec = source.DataSpec(
      name="sequence", task=task, input_shape=(2 * num_pairs + 1,),
      input_dtype="int32", num_classes=vocab, num_train=num_train,
      num_test=num_test, input_vocab_size=vocab)
  return source.ArraySource(spec, train, test)
