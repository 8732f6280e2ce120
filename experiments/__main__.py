"""``python -m experiments [NAME ...] [--out DIR] [--quick] [--jobs N] [--list]``:
reproduce the course notes' claims with jaxnn.

Run from the repository root. Each experiment writes its figures and ``results.json``
into ``--out/NAME/``; ``--out/index.html`` shows every figure with what it shows, which
claim it checks and whether the run confirmed it; ``--out/results.json`` gathers the
key numbers and verdicts of the experiments run.

``--jobs N`` runs N experiments at a time, each in a process of its own (default: one per
CPU core on a CPU-only host; see :mod:`experiments.runner`).

Run as a command, it first adds :func:`jaxnn.xla.compile_light_flags` to ``XLA_FLAGS``:
the report is hundreds of small programs, and XLA:CPU's legacy loop emitters compile
them faster, with the same results up to rounding. ``--quick`` also asks for XLA's
lowest backend optimisation level: its programs run too briefly for slower compiled code
to matter. ``--xla-defaults`` leaves ``XLA_FLAGS`` as it is (XLA's defaults): the
verdicts do not depend on the flags, and this is how to check it. A flag already in
``XLA_FLAGS`` is kept. It also turns on JAX's persistent compilation cache
(:func:`jaxnn.xla.use_compilation_cache`), so a second run reads back the programs the
first compiled (``JAXNN_COMPILATION_CACHE=0`` turns it off). Calling :func:`main` from
Python leaves ``XLA_FLAGS`` and the cache alone.

The page begins with the run's provenance (date, commit, versions, backend, CPU, the XLA
flags in force, full or quick, run time) and the count of claims confirmed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from experiments import report
from experiments.runner import EXPERIMENTS, MAX_JOBS, completed, default_jobs
from jaxnn import checkpoint, xla


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="experiments to run (default: all; see --list)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("report"), help="output folder (default: report)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a reduced pass: fewer steps, smaller data"
    )
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument(
        "--xla-defaults",
        action="store_true",
        help="run at XLA's default flags instead of adding the compile-light ones (see jaxnn.xla)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="experiments run at once, each in its own process (default: "
        f"one per CPU core, at most {MAX_JOBS}, on a CPU-only host; "
        "1 on an accelerator)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for name, module in EXPERIMENTS.items():
            print(f"{name:<20} {module.TITLE} (notes {module.NOTES})")
        return 0
    unknown = [n for n in args.names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiment(s) {unknown}; expected names from {list(EXPERIMENTS)}")
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be a positive number of processes, got {args.jobs}")
    names = list(dict.fromkeys(args.names)) or list(EXPERIMENTS)
    jobs = min(args.jobs or default_jobs(), len(names))
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        (args.out / name).mkdir(exist_ok=True)
    outcomes, seconds, compiling = {}, {}, {}
    start = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=len(names), unit="experiment", disable=None)
    bar.set_description(f"{len(names)} experiments, {jobs} at a time")
    for name, outcome, took, compiled in completed(names, args.out, args.quick, jobs):
        outcomes[name], seconds[name], compiling[name] = outcome, took, compiled
        bar.set_description(f"{name} done")
        bar.update(1)
        held = sum(bool(c.holds) for c in outcome.claims.values())
        tqdm.write(
            f"{name}: {held} of {len(outcome.claims)} claims confirmed "
            f"({took:.1f} s, {compiled:.1f} s of it compiling)"
        )
        for key, claim in outcome.claims.items():
            tqdm.write(f"   [{'x' if claim.holds else ' '}] {key}: {claim.evidence}")
    bar.close()
    outcomes = {name: outcomes[name] for name in names}  # the report in the table's order
    made = report.provenance(quick=args.quick, seconds=time.perf_counter() - start, jobs=jobs)
    made["compile seconds"] = round(sum(compiling.values()), 1)  # over all processes
    path = checkpoint.write_json(
        args.out / "results.json", report.summary_json(outcomes, seconds, made, compiling)
    )
    page = checkpoint.write_text(
        args.out / "index.html", report.index_html(outcomes, seconds, made, compiling)
    )
    count = report.totals(outcomes)
    print(
        f"{count['confirmed']} of {count['claims']} claims confirmed; wrote {page}, {path} "
        f"and one folder per experiment"
    )
    return 0


if __name__ == "__main__":
    # before JAX's first computation here and in the worker processes, which inherit it
    options = _parser().parse_args()
    if not options.xla_defaults:
        os.environ["XLA_FLAGS"] = xla.compile_light_flags(
            os.environ.get("XLA_FLAGS"), lowest_optimization=options.quick
        )
    xla.use_compilation_cache()  # a second run reads back what the first compiled
    sys.exit(main())
