r"""The level's horizon and rate on the MNIST-1D MLP at the quick suite's
600-step budget (issue 19; accuracy only, no timings).

  python benchmarks/meta_attention_estimator/horizon.py > \
      benchmarks/meta_attention_estimator/horizon.txt

settle.run (measure.py's MLP, data and batches, warm-up 100 then cosine
to 0) over 600 steps: `meta_attention_adamw` (no network) with the level
learning during the first `a` share of the run at rate `k` over an
`h`-step trace (defaults k 1, a 40%, h 100), started at 1e-3, 1e-2, 3e-2 and 1e-1;
"adamw" is the level held at 0. Each line: the effective rate (base times
exp(level), geometric mean over seeds 0 and 1) at steps 100, 240 and 600,
and the mean test accuracy.
"""

import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # pylint: disable=g-import-not-at-top
import settle  # pylint: disable=g-import-not-at-top

STEPS = 600
BASES = (1e-3, 1e-2, 3e-2, 1e-1)
CHECKPOINTS = (100, int(0.4 * STEPS), STEPS)
# name: (share of the run the level learns, level_rate, horizon)
VARIANTS = {
    "adamw": (0.0, 0.0, 100.0),
    "k1_a40": (0.4, 1.0, 100.0),
    "k1_all": (1.0, 1.0, 100.0),
    "k3_a40": (0.4, 3.0, 100.0),
    "k1_a40_h30": (0.4, 1.0, 30.0),
    "k1_a40_h300": (0.4, 1.0, 300.0),
    "k1_a40_h1000": (0.4, 1.0, 1000.0),
    "k1_a40_h3000": (0.4, 1.0, 3000.0),
    "k2_a40_h300": (0.4, 2.0, 300.0),
    "k1_a60_h300": (0.6, 1.0, 300.0),
}


def main():
  data = measure.load_data()
  for name, (share, rate, horizon) in VARIANTS.items():
    for base in BASES:
      accs, rates = [], []
      for seed in (0, 1):
        # Without the network every multiplier is 1: the log multiplier
        # settle.run returns is the level.
        level, acc = jax.device_get(settle.run(
            base, seed, *data, adapt_steps=int(share * STEPS),
            level_rate=rate, hyper_lr=0.0, steps=STEPS, horizon=horizon))
        accs.append(float(acc))
        rates.append([base * np.exp(level[s - 1]) for s in CHECKPOINTS])
      rate_at = np.exp(np.mean(np.log(rates), 0))
      print(f"{name:12s} base {base:g}: rate at steps "
            f"{'/'.join(map(str, CHECKPOINTS))} "
            + " / ".join(f"{r:.2g}" for r in rate_at)
            + f"  acc {np.mean(accs):.3f}", flush=True)


if __name__ == "__main__":
  main()
