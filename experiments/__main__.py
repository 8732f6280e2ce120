"""``python -m experiments [NAME ...] [--out DIR] [--quick]``: run jaxnn's experiments.

Writes each experiment's figures and one ``results.json`` (the key numbers of every
experiment run) into ``--out``, and prints the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments import digits_demo

EXPERIMENTS = {
    "digits_demo": digits_demo.run,
}


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
  parser.add_argument("names", nargs="*", metavar="NAME",
                      help=f"experiments to run (default: all of {', '.join(EXPERIMENTS)})")
  parser.add_argument("--out", type=Path, default=Path("results"),
                      help="folder for figures and results.json (default: results)")
  parser.add_argument("--quick", action="store_true", help="a fast, smaller pass")
  args = parser.parse_args(argv)
  unknown = [n for n in args.names if n not in EXPERIMENTS]
  if unknown:
    parser.error(f"unknown experiment(s) {unknown}; expected names from {list(EXPERIMENTS)}")
  args.out.mkdir(parents=True, exist_ok=True)
  results = {}
  for name in args.names or list(EXPERIMENTS):
    print(f"== {name}", flush=True)
    results[name] = EXPERIMENTS[name](args.out, quick=args.quick)
    for key, value in results[name].items():
      print(f"   {key}: {value}")
  path = args.out / "results.json"
  tmp = path.with_suffix(".json.tmp")
  tmp.write_text(json.dumps(results, indent=2) + "\n")
  tmp.replace(path)
  print(f"wrote {path} and the figures beside it")
  return 0


if __name__ == "__main__":
  sys.exit(main())
