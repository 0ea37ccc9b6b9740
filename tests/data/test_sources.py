"""Data sources: determinism, example ids, iterator state, eval coverage."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from accel import data

SMALL = {
    "mnist1d": {"name": "mnist1d", "num_samples": 600},
    "digits": {"name": "digits"},
    "synthetic": {"name": "synthetic", "num_train": 512, "num_test": 128},
    "sequence": {"name": "sequence", "num_train": 256, "num_test": 64},
    "sequence_lm": {"name": "sequence", "task": "lm", "num_train": 256,
                    "num_test": 64},
    "ngram": {"name": "sequence", "task": "ngram", "num_train": 256,
              "num_test": 64, "length": 17},
    "textures": {"name": "textures", "num_train": 256, "num_test": 64},
}


@pytest.fixture(scope="module", params=sorted(SMALL))
def source(request):
  return data.make_source(SMALL[request.param])


def _take(it, n):
  return [next(it) for _ in range(n)]


def test_same_seed_same_batches_other_seed_other(source):
  a = _take(source.train_iterator(16, seed=3), 3)
  b = _take(source.train_iterator(16, seed=3), 3)
  c = _take(source.train_iterator(16, seed=4), 3)
  for x, y in zip(a, b):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  assert any(not np.array_equal(x["example_id"], z["example_id"])
             for x, z in zip(a, c))


def test_example_ids_index_the_training_split(source):
  batch = next(source.train_iterator(16, seed=0))
  assert batch["example_id"].dtype == np.int32
  again = source.fetch("train", batch["example_id"])
  for k in again:
    np.testing.assert_array_equal(batch[k], again[k])


def test_one_epoch_visits_every_example_once_then_reshuffles(source):
  n = source.num_examples("train")
  batch = 8 if n % 8 == 0 else 1
  it = source.train_iterator(batch, seed=1)
  epoch1 = np.concatenate([next(it)["example_id"] for _ in range(n // batch)])
  epoch2 = np.concatenate([next(it)["example_id"] for _ in range(n // batch)])
  assert sorted(epoch1) == list(range(n))
  assert sorted(epoch2) == list(range(n))
  assert not np.array_equal(epoch1, epoch2)


def test_iterator_state_replays_the_same_batches(source):
  it = source.train_iterator(16, seed=5)
  _take(it, 4)
  state = data.iterator_state(it)
  expected = _take(it, 3)
  resumed = source.train_iterator(16, seed=5)
  resumed.set_state(state)
  for x, y in zip(expected, _take(resumed, 3)):
    np.testing.assert_array_equal(x["example_id"], y["example_id"])
    np.testing.assert_array_equal(x["inputs"], y["inputs"])


def test_eval_batches_cover_the_split_once_with_padding_masked(source):
  n = source.num_examples("test")
  batches = list(source.eval_batches(50, "test"))
  assert all(b["inputs"].shape[0] == 50 for b in batches)
  ids = np.concatenate([b["example_id"][b["mask"]] for b in batches])
  np.testing.assert_array_equal(ids, np.arange(n))
  assert sum(b["mask"].sum() for b in batches) == n


def test_batch_matches_spec(source):
  batch = next(source.train_iterator(4, seed=0))
  spec = source.spec
  assert batch["inputs"].shape == (4,) + spec.input_shape
  assert batch["inputs"].dtype == np.dtype(spec.input_dtype)
  assert batch["label"].dtype == np.int32
  assert batch["label"].min() >= 0 and batch["label"].max() < spec.num_classes


def test_process_shards_are_disjoint_and_cover_the_data():
  src = data.make_source(SMALL["synthetic"])
  n = src.num_examples("train")
  seen = []
  for p in range(2):
    it = src.train_iterator(1, seed=0, process_index=p, process_count=2)
    seen.append(np.concatenate([next(it)["example_id"]
                                for _ in range(len(range(p, n, 2)))]))
  assert not set(seen[0]) & set(seen[1])
  assert sorted(np.concatenate(seen)) == list(range(n))


def test_excluded_examples_are_never_trained_on():
  src = data.make_source(SMALL["synthetic"])
  n = src.num_examples("train")
  held = np.array([0, 5, 17, 300, n - 1])
  it = src.train_iterator(8, seed=2, exclude=held)
  per_epoch = (n - len(held)) // 8
  # Two epochs: only examples not held out, each at most once an epoch
  # (the partial batch at the end is dropped).
  for _ in range(2):
    ids = np.concatenate([next(it)["example_id"] for _ in range(per_epoch)])
    assert not set(ids) & set(held)
    assert len(set(ids)) == len(ids) == per_epoch * 8
  with pytest.raises(ValueError, match="batch_size 8 is larger than the 3 "
                     "training examples"):
    next(src.train_iterator(8, seed=0, exclude=np.arange(n - 3)))


def test_synthetic_imbalance_and_noise_are_what_was_asked():
  src = data.make_source({"name": "synthetic", "num_train": 20000,
                          "imbalance": 100.0, "label_noise": 0.2,
                          "data_seed": 1})
  train = src.arrays("train")
  counts = np.bincount(train["clean_label"], minlength=10)
  assert counts.max() / counts.min() == pytest.approx(100, rel=0.1)
  assert train["noisy"].mean() == pytest.approx(0.2, abs=0.01)
  np.testing.assert_array_equal(train["label"] != train["clean_label"],
                                train["noisy"])
  test = src.arrays("test")
  assert np.ptp(np.bincount(test["label"])) <= 1  # balanced test split
  assert not test["noisy"].any()


def test_synthetic_separation_controls_difficulty():
  def nearest_mean_accuracy(separation):
    src = data.make_source({"name": "synthetic", "separation": separation,
                            "num_train": 4000, "num_test": 1000})
    tr, te = src.arrays("train"), src.arrays("test")
    means = np.stack([tr["inputs"][tr["label"] == c].mean(0)
                      for c in range(10)])
    pred = np.argmin(((te["inputs"][:, None] - means) ** 2).sum(-1), 1)
    return (pred == te["label"]).mean()
  assert nearest_mean_accuracy(6.0) > nearest_mean_accuracy(1.0) + 0.2


def test_synthetic_images_have_smooth_class_means():
  src = data.make_source({"name": "synthetic", "dim": 144, "image_size": 12,
                          "num_train": 2000, "num_test": 100,
                          "data_seed": 4})
  assert src.spec.input_shape == (12, 12, 1)
  tr = src.arrays("train")
  assert tr["inputs"].shape == (2000, 12, 12, 1)
  def neighbour_correlation(x_Nx12x12, labels):
    means = np.stack([x_Nx12x12[labels == c].mean(0) for c in range(10)])
    a, b = means[:, :, :-1].ravel(), means[:, :, 1:].ravel()
    return np.corrcoef(a, b)[0, 1]
  assert neighbour_correlation(tr["inputs"][..., 0], tr["label"]) > 0.7
  flat = data.make_source({"name": "synthetic", "dim": 144,
                           "num_train": 2000, "num_test": 100})
  ftr = flat.arrays("train")
  assert abs(neighbour_correlation(ftr["inputs"].reshape(-1, 12, 12),
                                   ftr["label"])) < 0.2
  with pytest.raises(ValueError, match=r"image_size 10 and dim 32"):
    data.make_source({"name": "synthetic", "image_size": 10})


def test_sequence_answers_are_the_value_paired_with_the_query():
  src = data.make_source(SMALL["sequence"])
  tr = src.arrays("train")
  for seq, answer in zip(tr["inputs"][:50], tr["label"][:50]):
    keys, values, query = seq[0:-1:2], seq[1:-1:2], seq[-1]
    assert len(set(keys)) == len(keys)
    assert values[list(keys).index(query)] == answer


def test_sequence_lm_counts_only_the_answer_position():
  src = data.make_source(SMALL["sequence_lm"])
  b = next(src.train_iterator(4, seed=0))
  np.testing.assert_array_equal(b["inputs"][:, 1:], b["label"][:, :-1])
  assert (b["label_mask"].sum(1) == 1).all() and (b["label_mask"][:, -1] == 1).all()


def test_ngram_follows_its_table_and_bayes_accuracy_is_the_limit():
  from accel.data import sequence  # pylint: disable=g-import-not-at-top
  args = dict(vocab_size=9, order=2, concentration=0.3, data_seed=4)
  src = data.make_source({"name": "sequence", "task": "ngram",
                          "num_train": 4000, "num_test": 2000, "length": 33,
                          **args})
  table = sequence.ngram_table(args["vocab_size"], args["order"],
                               args["concentration"], args["data_seed"])
  tr, te = src.arrays("train"), src.arrays("test")
  np.testing.assert_array_equal(tr["inputs"][:, 1:], tr["label"][:, :-1])
  # The first target's context is one token, incomplete: it does not count.
  assert (tr["label_mask"][:, 0] == 0).all()
  assert (tr["label_mask"][:, 1:] == 1).all()
  assert tr["inputs"].min() >= 1 and tr["inputs"].max() <= 8
  # Empirical next-token frequencies of a context match its row.
  k = args["vocab_size"] - 1
  ctx = (tr["inputs"][:, :-1] - 1) * k + (tr["inputs"][:, 1:] - 1)
  nxt = tr["label"][:, 1:]
  for row in np.argsort(-np.bincount(ctx.ravel()))[:5]:
    freq = np.bincount(nxt[ctx == row], minlength=k + 1) / (ctx == row).sum()
    np.testing.assert_allclose(freq, table[row], atol=0.05)
  # Predicting each context's likeliest token scores the stated limit.
  ctx_t = (te["inputs"][:, :-1] - 1) * k + (te["inputs"][:, 1:] - 1)
  bayes = (table[ctx_t].argmax(-1) == te["label"][:, 1:]).mean()
  assert bayes == pytest.approx(sequence.ngram_accuracy_limit(table),
                                abs=0.02)
  assert sequence.ngram_accuracy_limit(table) > 2.0 / k  # above chance
  with pytest.raises(ValueError, match="length=2"):
    data.make_source({"name": "sequence", "task": "ngram", "length": 2})


def test_textures_need_translation_invariance_and_noise_sets_difficulty():
  """Class templates in pixel space cancel out (random translations), while
  the power spectrum, which translation leaves alone, separates classes;
  more noise makes that harder."""
  def accuracies(noise):
    src = data.make_source({"name": "textures", "num_train": 3000,
                            "num_test": 1000, "noise": noise})
    tr, te = src.arrays("train"), src.arrays("test")
    def nearest_mean(feat_tr, feat_te):
      means = np.stack([feat_tr[tr["label"] == c].mean(0)
                        for c in range(10)])
      d = ((feat_te[:, None] - means[None]) ** 2).sum(-1)
      return (d.argmin(1) == te["label"]).mean()
    flat = lambda x: x.reshape(len(x), -1)
    power = lambda x: flat(np.abs(np.fft.fft2(x, axes=(1, 2))) ** 2)
    return (nearest_mean(flat(tr["inputs"]), flat(te["inputs"])),
            nearest_mean(power(tr["inputs"]), power(te["inputs"])))
  pixel, spectrum = accuracies(noise=2.5)  # the default
  assert pixel < 0.2 and spectrum > 0.8  # chance is 0.1
  _, clean_spectrum = accuracies(noise=1.0)
  _, noisy_spectrum = accuracies(noise=4.0)
  assert clean_spectrum > spectrum > noisy_spectrum + 0.02
  src = data.make_source({"name": "textures", "num_train": 64,
                          "num_test": 16})
  assert src.spec.input_shape == (32, 32, 3)
  assert not src.arrays("train")["inputs"].flags.writeable
  with pytest.raises(ValueError, match="distractor in"):
    data.make_source({"name": "textures", "distractor": 1.5})


def test_tfds_image_and_text_on_mock_data():
  with tfds.testing.mock_data(num_examples=24):
    src = data.make_source({"name": "tfds", "dataset": "mnist"})
    assert src.spec.input_shape == (28, 28, 1) and src.spec.num_classes == 10
    b = next(src.train_iterator(8, seed=0))
    assert b["inputs"].shape == (8, 28, 28, 1) and b["inputs"].dtype == np.float32
    assert abs(float(b["inputs"].mean())) < 0.5  # standardised
    raw = data.make_source({"name": "tfds", "dataset": "mnist",
                            "standardize": False})
    rb = next(raw.train_iterator(8, seed=0))
    assert 0.0 <= rb["inputs"].min() and rb["inputs"].max() <= 1.0
    text = data.make_source({"name": "tfds", "dataset": "imdb_reviews",
                             "max_length": 32})
    tb = next(text.train_iterator(4, seed=0))
    assert tb["inputs"].shape == (4, 32) and tb["inputs"].dtype == np.int32
    assert text.spec.input_vocab_size == 257 and tb["inputs"].max() < 257
    evals = list(src.eval_batches(10))
    assert sum(e["mask"].sum() for e in evals) == src.num_examples("test")


def test_tfds_not_prepared_says_how_to_prepare(tmp_path):
  with pytest.raises(data.DatasetNotPreparedError,
                     match=r"(?s)'mnist' is not prepared.*download_and_prepare"
                     r".*--config\.data\.download=True"):
    data.make_source({"name": "tfds", "dataset": "mnist",
                      "data_dir": str(tmp_path)})


class AccelTinyText(tfds.core.GeneratorBasedBuilder):
  """A tfds builder that makes its own data: preparing it needs no
  network and no TensorFlow, only what requirements.txt installs."""
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features
                                 .FeaturesDict({
                                     "text": tfds.features.Text(),
                                     "label": tfds.features.ClassLabel(
                                         num_classes=2)}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(64, 0),
            "test": self._generate_examples(16, 1)}

  def _generate_examples(self, n, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
      y = int(rng.integers(2))
      yield i, {"text": ("good " if y else "bad ") * int(rng.integers(1, 5)),
                "label": y}


def test_tfds_download_and_prepare_runs_offline(tmp_path):
  """`download=True` prepares a data set in array_record format (here one
  whose builder makes its data), and the source then reads it."""
  src = data.make_source({"name": "tfds", "dataset": "accel_tiny_text",
                          "data_dir": str(tmp_path), "download": True,
                          "max_length": 16})
  assert src.num_examples("train") == 64 and src.num_examples("test") == 16
  batch = src.fetch("train", np.arange(4))
  assert batch["inputs"].shape == (4, 16) and batch["label"].shape == (4,)
  # Prepared once: the next source reads it without preparing again.
  again = data.make_source({"name": "tfds", "dataset": "accel_tiny_text",
                            "data_dir": str(tmp_path), "max_length": 16})
  np.testing.assert_array_equal(again.fetch("train", np.arange(4))["inputs"],
                                batch["inputs"])


def test_unknown_names_and_options_are_named():
  with pytest.raises(ValueError, match=r"Unknown data set 'mnist1D'.*"
                     r"Did you mean 'mnist1d'"):
    data.make_source({"name": "mnist1D"})
  with pytest.raises(ValueError, match=r"Unknown option 'imbalanse'.*"
                     r"'imbalance'"):
    data.make_source({"name": "synthetic", "imbalanse": 10})
  with pytest.raises(ValueError, match="Unknown tfds data set 'no_such_set'"):
    data.make_source({"name": "tfds", "dataset": "no_such_set"})
  with pytest.raises(ValueError, match="batch_size 10000 is larger"):
    data.make_source(SMALL["digits"]).train_iterator(10000, seed=0)


def test_digits_label_noise_flips_the_share_asked_and_marks_it():
  clean = data.make_source({"name": "digits"}).arrays("train")
  noisy = data.make_source({"name": "digits", "label_noise": 0.2})
  train, test = noisy.arrays("train"), noisy.arrays("test")
  flipped = train["label"] != clean["label"]
  np.testing.assert_array_equal(flipped, train["noisy"])
  assert 0.15 < flipped.mean() < 0.25
  np.testing.assert_array_equal(train["inputs"], clean["inputs"])
  assert not test["noisy"].any()
  np.testing.assert_array_equal(
      test["label"], data.make_source({"name": "digits"}).arrays("test")[
          "label"])
  with pytest.raises(ValueError, match=r"label_noise must be in \[0, 1\)"):
    data.make_source({"name": "digits", "label_noise": 1.0})
