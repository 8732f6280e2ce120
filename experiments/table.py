"""``python -m experiments.table [RESULTS] [--readme README.md]``: the README's table of
claims, made from a run's ``results.json``.

Prints a Markdown table (one row per experiment: what it checks, how many of its claims
the run confirmed, and the statement of each claim it did not) under a line giving the
totals and the run's provenance. With ``--readme`` it replaces the block between the
README's ``<!-- claims-table:start -->`` and ``<!-- claims-table:end -->`` markers
instead, so the README's numbers are the run's, never typed by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jaxnn import checkpoint

START, END = "<!-- claims-table:start -->", "<!-- claims-table:end -->"


def markdown(results: dict) -> str:
    """The totals line and the table for a run's gathered ``results.json``."""
    p = results["provenance"]
    lines = [
        f"{results['confirmed']} of {results['claims']} claims confirmed in the "
        f"{p['pass']} run of commit {p['commit'][:12]} ({p['date']}, {p['total seconds']:.0f} s "
        f"on {p['cpu']}; jax {p['versions']['jax']}).",
        "",
        "| experiment | what it checks | confirmed | not confirmed |",
        "| --- | --- | --- | --- |",
    ]
    for name, e in results["experiments"].items():
        claims = e["claims"].values()
        held = sum(c["holds"] for c in claims)
        refuted = "; ".join(c["statement"] for c in claims if not c["holds"])
        lines.append(
            f"| `{name}` | {e['title']} | {held} of {len(e['claims'])} | "
            f"{refuted.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def replace_block(text: str, table: str) -> str:
    """``text`` with the block between the markers replaced by ``table``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"the README must hold one {START} … {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.table", description=__doc__)
    parser.add_argument(
        "results",
        nargs="?",
        type=Path,
        default=Path("report/results.json"),
        help="a run's gathered results.json (default: report/results.json)",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="rewrite this README's claims-table block instead of printing",
    )
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
        table = markdown(results)
    except (OSError, ValueError, KeyError, TypeError) as e:
        parser.error(
            f"{args.results} is not a results.json of python -m experiments: "
            f"{type(e).__name__}: {e}"
        )
    if args.readme is None:
        sys.stdout.write(table)
        return 0
    try:
        text = replace_block(args.readme.read_text(), table)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    checkpoint.write_text(args.readme, text)
    print(f"wrote the claims table of {args.results} into {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
