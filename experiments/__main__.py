"""``python -m experiments [NAME ...] [--out DIR] [--quick] [--list]``: reproduce the
course notes' claims with jaxnn.

Run from the repository root. Each experiment writes its figures and ``results.json``
into ``--out/NAME/``; ``--out/index.html`` shows every figure with what it shows, which
claim it checks and whether the run confirmed it; ``--out/results.json`` gathers the
key numbers and verdicts of the experiments run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from experiments import report
from jaxnn import checkpoint

NAMES = ("learning_rate", "weight_decay", "init_distribution", "slow_learning",
         "softmax_likelihood", "deep_activations", "symmetry", "convergence_rates",
         "momentum", "schedules", "adaptive", "normalization",
         "regularization", "gradient_clipping", "lr_sweep",
         "edge_of_stability", "hessian_spectrum")
EXPERIMENTS = {name: importlib.import_module(f"experiments.{name}") for name in NAMES}


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
  parser.add_argument("names", nargs="*", metavar="NAME",
                      help="experiments to run (default: all; see --list)")
  parser.add_argument("--out", type=Path, default=Path("report"),
                      help="output folder (default: report)")
  parser.add_argument("--quick", action="store_true",
                      help="a reduced pass: fewer steps, smaller data")
  parser.add_argument("--list", action="store_true", help="list the experiments and exit")
  args = parser.parse_args(argv)
  if args.list:
    for name, module in EXPERIMENTS.items():
      print(f"{name:<20} {module.TITLE} (seeds {module.SEEDS})")
    return 0
  unknown = [n for n in args.names if n not in EXPERIMENTS]
  if unknown:
    parser.error(f"unknown experiment(s) {unknown}; expected names from {list(EXPERIMENTS)}")
  names = args.names or list(EXPERIMENTS)
  args.out.mkdir(parents=True, exist_ok=True)
  outcomes, seconds = {}, {}
  from tqdm.auto import tqdm

  bar = tqdm(names, unit="experiment", desc="experiments", disable=None)
  for name in bar:
    bar.set_description(name)
    folder = args.out / name
    folder.mkdir(exist_ok=True)
    start = time.perf_counter()
    outcomes[name] = EXPERIMENTS[name].run(folder, quick=args.quick)
    seconds[name] = time.perf_counter() - start
    report.write(folder, outcomes[name])
    held = sum(bool(c.holds) for c in outcomes[name].claims.values())
    tqdm.write(f"{name}: {held} of {len(outcomes[name].claims)} claims confirmed "
               f"({seconds[name]:.1f} s)")
    for key, claim in outcomes[name].claims.items():
      tqdm.write(f"   [{'x' if claim.holds else ' '}] {key}: {claim.evidence}")
  summary = {name: {**report.as_json(o), "seconds": round(seconds[name], 2)}
             for name, o in outcomes.items()}
  path = checkpoint.write_json(args.out / "results.json", summary)
  page = args.out / "index.html"
  page.write_text(report.index_html(outcomes, seconds, args.quick))
  print(f"wrote {page}, {path} and one folder per experiment")
  return 0


if __name__ == "__main__":
  sys.exit(main())
