"""Share of logged steps on which selection was on, per report seed, at each
method's tuned rate: the controller's decisions in a bench results.json.

  python benchmarks/selection_confirm/on_share.py \
      benchmarks/selection_pays/results.json \
      benchmarks/selection_confirm/results.json
"""

import json
import sys


def on_shares(path):
  results = json.load(open(path))
  for name, w in sorted(results["workloads"].items()):
    for method, s in sorted(w["summary"].items()):
      if method == results["config"]["baseline"]:
        continue
      lr = s["learning_rate"]
      key = next(k for k in w["trials"][method] if float(k) == lr)
      shares = []
      for trial in w["trials"][method][key]:
        on = [p["train"]["selection/on"] for p in trial["curve"]
              if "selection/on" in p.get("train", {})]
        shares.append(round(sum(on) / len(on), 2) if on else None)
      yield name, method, lr, shares, s


if __name__ == "__main__":
  for path in sys.argv[1:]:
    print(path)
    for name, method, lr, shares, s in on_shares(path):
      print(f"  {name:13s} {method:24s} lr={lr:g}  on-share {shares}  "
            f"final acc {s['final_accuracy']['mean']:.4f}  reached "
            f"{s['seconds_to_target']['reached']}/{len(shares)}")
