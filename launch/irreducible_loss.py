"""Makes the irreducible-loss table the RHO-LOSS scorer reads.

  python launch/irreducible_loss.py \
      --config configs/synthetic_mlp.py:imbalance=20,noise=0.2 \
      --out runs/il/synthetic.npz
  python launch/train.py --config configs/synthetic_mlp.py:imbalance=20,noise=0.2 \
      --config.selection.scorer=reducible_loss \
      --config.selection.irreducible_table=runs/il/synthetic.npz --workdir W

Trains the config's model and optimizer on a held-out slice of the training
split and writes its loss on every training example (accel.train.irreducible).
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from accel.selection import tables
from accel.train import cli
from accel.train import irreducible

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The training config the table is for.",
    lock_config=True)
_OUT = flags.DEFINE_string("out", None, "Where to write the .npz table.")
_HOLDOUT = flags.DEFINE_float("holdout_fraction", 0.2,
                              "Share of the training split to train on.")
_STEPS = flags.DEFINE_integer("steps", 500, "Training steps on the holdout.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.mark_flags_as_required(["config", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  c = _CONFIG.value
  table = irreducible.make_table(c, holdout_fraction=_HOLDOUT.value,
                                 steps=_STEPS.value, batch_size=_BATCH.value,
                                 seed=c.seed)
  tables.save_table(_OUT.value, table, c.data)
  print(f"Wrote {_OUT.value}: {len(table)} examples, irreducible loss mean "
        f"{table.mean():.4f}, max {table.max():.4f}.")


if __name__ == "__main__":
  cli.run(main)
