"""Associative recall: a seeded synthetic sequence task for Transformers.

A sequence lists `num_pairs` key-value pairs, then repeats one of the keys;
the answer is the value that key was paired with. Solving it needs attention
from the query back to the matching key (an induction-head-like circuit), so
it separates sequence models from bag-of-tokens ones.

Tokens: 0 is reserved, keys are 1..num_keys, values follow them.
  task="classification": inputs [2P+1] tokens, label = the answer's token id.
  task="lm": next-token prediction over the whole sequence (inputs = seq[:-1],
    label = seq[1:]); only the answer position counts (label_mask), since
    the other tokens are random and cannot be predicted.
"""

import numpy as np

from accel.data import source


def _sequences(rng, n, num_pairs, num_keys, num_values):
  keys_NxP = np.argsort(rng.random((n, num_keys)), axis=1)[:, :num_pairs] + 1
  values_NxP = rng.integers(0, num_values, (n, num_pairs)) + num_keys + 1
  which_N = rng.integers(0, num_pairs, n)
  rows = np.arange(n)
  query_N, answer_N = keys_NxP[rows, which_N], values_NxP[rows, which_N]
  pairs_NxL = np.stack([keys_NxP, values_NxP], axis=2).reshape(n, -1)
  seq = np.concatenate([pairs_NxL, query_N[:, None], answer_N[:, None]], 1)
  return seq.astype(np.int32)


@source.SOURCES.register("sequence")
def make_sequence(task: str = "classification", num_train: int = 8192,
                  num_test: int = 1024, num_pairs: int = 8,
                  num_keys: int = 16, num_values: int = 16,
                  data_seed: int = 0) -> source.ArraySource:
  """Builds the task; arguments are described in the module docstring."""
  if task not in ("classification", "lm"):
    raise ValueError(f"task must be 'classification' or 'lm', got {task!r}.")
  if num_pairs > num_keys:
    raise ValueError(f"num_pairs ({num_pairs}) must be <= num_keys "
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
