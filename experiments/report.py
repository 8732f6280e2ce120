"""What an experiment returns, how its verdicts are decided, and the pages made from it:
``results.json`` per experiment and the ``index.html`` a person reads.

Every claim's verdict is a boolean computed by the experiment from its run, by a rule
the claim states ("holds in ≥ 4 of 5 seeds", "mean paired difference < −2 standard
errors"); the page only shows it. A claim quotes the sentence of the notes it checks
(:func:`notes`) or says that it is jaxnn's own (:data:`OWN`), and records how many runs
its verdict rests on (1 for a deterministic computation such as a closed form).
"""

from __future__ import annotations

import datetime
import html
import math
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxnn import checkpoint, plotting, stats

#: The source of a claim that the notes do not make.
OWN = "jaxnn's own claim (not in the notes)"

#: Standard errors a paired mean difference must exceed to count as a difference.
Z = 2.0


class Claim(NamedTuple):
    """A claim checked by a run.

    Fields:
      statement: what is checked, in jaxnn's words.
      source: the notes' sentence it checks (:func:`notes`), or :data:`OWN`.
      rule: how the verdict is computed from the runs, e.g. "holds in ≥ 4 of 5 seeds".
      holds: the verdict.
      evidence: the numbers behind it, in words.
      seeds: how many runs (seeds) the verdict rests on; 1 for a deterministic computation.
    """

    statement: str
    source: str
    rule: str
    holds: bool
    evidence: str
    seeds: int


class Figure(NamedTuple):
    """A PNG in the experiment's folder and the paragraph that says what it shows."""

    file: str
    caption: str


class Outcome(NamedTuple):
    """An experiment's result: ``title``, the ``notes`` files it checks (e.g. "000, 002"),
    a ``summary`` paragraph, key ``numbers``, ``claims`` (name -> Claim) and ``figures``."""

    title: str
    notes: str
    summary: str
    numbers: dict
    claims: dict
    figures: list


# ---------------------------------------------------------------------------------------
# sources and rules
# ---------------------------------------------------------------------------------------


def notes(file: str, quote: str) -> str:
    """The source of a claim the notes make: ``notes 001: “…quote…”`` (a few words of the
    sentence, as the notes file ``file`` has them)."""
    return f"notes {file}: “{quote}”"


def vote(flags: Sequence[bool], need: int | None = None) -> tuple[bool, str]:
    """(holds, rule) for a claim checked seed by seed: it holds when ``flags`` (one per
    seed) has at least ``need`` true values (default: all but one of 5 or more seeds, all
    of fewer)."""
    n = len(flags)
    need = (n - 1 if n >= 5 else n) if need is None else need
    return stats.count(flags) >= need, f"holds in ≥ {need} of {n} seeds"


def tally(flags: Sequence[bool]) -> str:
    """ "4 of 5 seeds": how many of the per-seed ``flags`` held."""
    return f"{stats.count(flags)} of {len(flags)} seeds"


def lower(a: Any, b: Any) -> tuple[bool, str, stats.Difference]:
    """(holds, rule, difference) for "a is lower than b": the mean paired difference a − b
    over the seeds is below −:data:`Z` standard errors."""
    d = stats.paired_difference(a, b)
    return (
        bool(d.mean < -Z * d.stderr),
        (f"mean paired difference < −{Z:g} standard errors over {d.n} seeds"),
        d,
    )


def listed(values: Any, fmt: str = ".3g") -> str:
    """ "0.1, 0.25, 3": per-seed (or per-setting) numbers in words."""
    return ", ".join(format(v.item() if hasattr(v, "item") else v, fmt) for v in values)


def mean_pm(values: Any, digits: int = 3) -> str:
    """ "0.123 ± 0.004": the mean over seeds ± its standard error."""
    s = stats.mean_stderr(values)
    return f"{s.mean:.{digits}g} ± {s.stderr:.2g}"


def difference(d: stats.Difference, digits: int = 3) -> str:
    """ "−0.012 ± 0.003 (z = −4.1)": a paired difference in words."""
    z = "" if not np.isfinite(d.z) else f" (z = {d.z:.2g})"
    return f"{d.mean:+.{digits}g} ± {d.stderr:.2g}{z}"


def unconfirmed(claims: dict, why: dict | None = None) -> str:
    """The summary's account of the claims a run refuted: for each false claim,
    " Not confirmed: <statement> (<evidence>)." followed by ``why[name]`` when given (the
    reason the run found). Empty when every claim held."""
    parts = []
    for name, claim in claims.items():
        if not claim.holds:
            reason = (why or {}).get(name, "")
            parts.append(
                f" Not confirmed: {claim.statement} ({claim.evidence})."
                + (f" {reason}" if reason else "")
            )
    return "".join(parts)


#: Resolution of the report's figures: an 11-inch figure fills the page's 1,100-pixel
#: column at its own size (click for the full-size file).
DPI = 100


def save(fig: Any, path: Path) -> Path:
    """Saves an experiment's figure at the report's resolution."""
    return plotting.save(fig, path, dpi=DPI)


# ---------------------------------------------------------------------------------------
# results.json
# ---------------------------------------------------------------------------------------


def as_json(outcome: Outcome) -> dict:
    """The ``results.json`` of one experiment: summary, numbers, and each claim with its
    statement, source, rule, verdict, evidence and seeds."""
    return checkpoint.plain(
        {
            "title": outcome.title,
            "notes": outcome.notes,
            "summary": outcome.summary,
            "numbers": outcome.numbers,
            "claims": {
                name: {**c._asdict(), "holds": bool(c.holds), "seeds": int(c.seeds)}
                for name, c in outcome.claims.items()
            },
            "figures": [f.file for f in outcome.figures],
        }
    )


def write(folder: Path, outcome: Outcome) -> Path:
    """Writes ``folder/results.json`` and returns its path."""
    return checkpoint.write_json(folder / "results.json", as_json(outcome))


def totals(outcomes: dict) -> dict:
    """``confirmed`` and ``claims`` counted over every experiment, and the ``refuted``
    claims as "experiment.claim"."""
    claims = [(name, key, c) for name, o in outcomes.items() for key, c in o.claims.items()]
    return {
        "confirmed": sum(bool(c.holds) for _, _, c in claims),
        "claims": len(claims),
        "refuted": [f"{name}.{key}" for name, key, c in claims if not c.holds],
    }


def summary_json(
    outcomes: dict, seconds: dict, provenance: dict, compiling: dict | None = None
) -> dict:
    """The ``results.json`` that gathers a whole run: provenance, totals, and every
    experiment's own results with its run time and the part of it spent compiling
    (``compiling``, seconds by name, from :func:`jaxnn.xla.compile_seconds`)."""
    compiling = compiling or {}
    return checkpoint.plain(
        {
            "provenance": provenance,
            **totals(outcomes),
            "experiments": {
                name: {
                    **as_json(o),
                    "seconds": round(seconds[name], 2),
                    "compile seconds": round(compiling.get(name, math.nan), 2),
                }
                for name, o in outcomes.items()
            },
        }
    )


# ---------------------------------------------------------------------------------------
# provenance
# ---------------------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpu() -> tuple[str, str]:
    """(the CPU's model name, its vector instruction sets) as /proc/cpuinfo gives them."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    sets = [
        name
        for flag, name in (
            ("avx512f", "AVX-512"),
            ("avx2", "AVX2"),
            ("avx", "AVX"),
            ("sse4_2", "SSE4.2"),
        )
        if flag in flags
    ]
    return model, ", ".join(sets[:1]) or "not reported"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def provenance(*, quick: bool, seconds: float, jobs: int) -> dict:
    """Where and how a run was made: date, git commit, versions, backend, CPU, XLA flags
    in force, the compilation cache, full or quick, the total run time and the
    experiments run at once."""
    import jax

    commit = _git("rev-parse", "HEAD") or "unknown (not a git checkout)"
    if commit[:1].isalnum() and _git("status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    model, vector = _cpu()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    devices = jax.devices()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "pass": "quick (--quick)" if quick else "full",
        "total seconds": round(seconds, 1),
        "experiments at once": jobs,
        "versions": {p: _version(p) for p in ("jax", "jaxlib", "numpy", "optax", "matplotlib")}
        | {"python": platform.python_version()},
        "backend": f"{jax.default_backend()}, {len(devices)} "
        f"{'device' if len(devices) == 1 else 'devices'} "
        f"({devices[0].device_kind})",
        "cpu": f"{model}, {cores} {'core' if cores == 1 else 'cores'} usable, {vector}",
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") or "none (XLA's defaults)",
        "compilation cache": jax.config.values.get("jax_compilation_cache_dir") or "off",
    }


# ---------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; line-height: 1.45; color: #222; }
h2 { border-top: 1px solid #ccc; padding-top: 1em; }
img { max-width: 100%; border: 1px solid #eee; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
.yes { color: #176b2c; font-weight: bold; } .no { color: #a31515; font-weight: bold; }
.source { color: #555; font-size: 0.92em; } .rule { font-size: 0.92em; }
figure { margin: 1em 0 1.5em; } figcaption { margin-top: 0.3em; }
.provenance td:first-child { white-space: nowrap; color: #555; }
.top { font-size: 0.9em; }
"""


def _number(value: Any) -> str:
    """A number, list or flag as a person reads it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, float):
        return "none" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):  # a list of lists: the inner ones apart by "; "
        nested = any(isinstance(v, (list, tuple)) for v in value)
        return ("; " if nested else ", ").join(_number(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k} {_number(v)}" for k, v in value.items())
    return str(value)


def _verdict(holds: bool) -> str:
    return (
        "<span class='yes'>confirmed</span>" if holds else "<span class='no'>not confirmed</span>"
    )


def _provenance_html(p: dict) -> list[str]:
    e = html.escape
    rows = [
        ("date", p["date"]),
        ("git commit", p["commit"]),
        ("pass", p["pass"]),
        (
            "run time",
            f"{p['total seconds']:.0f} s, {p['experiments at once']} "
            f"experiment{'s' if p['experiments at once'] > 1 else ''} at a time"
            + (
                f"; {p['compile seconds']:.0f} s compiling, summed over the experiments"
                if "compile seconds" in p
                else ""
            ),
        ),
        ("versions", ", ".join(f"{k} {v}" for k, v in p["versions"].items())),
        ("backend", p["backend"]),
        ("CPU", p["cpu"]),
        ("XLA_FLAGS", p["XLA_FLAGS"]),
        ("compilation cache", p.get("compilation cache", "off")),
    ]
    return (
        ["<table class='provenance'>"]
        + [f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in rows]
        + ["</table>"]
    )


def index_html(
    outcomes: dict, seconds: dict, provenance: dict, compiling: dict | None = None
) -> str:
    """The report page: provenance, the total and the refuted claims, a table of contents,
    then per experiment its summary, claims (with their sources, rules and seeds),
    figures (each opens full size on click) and key numbers."""
    e = html.escape
    count = totals(outcomes)
    quick = provenance["pass"].startswith("quick")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>jaxnn experiments"
        f"</title><style>{_STYLE}</style></head><body>",
        "<h1 id='top'>jaxnn experiments</h1>",
        "<p>Each experiment checks claims of the course notes (or, where marked, claims "
        "of jaxnn's own) against its own runs. A verdict is computed from the numbers "
        "by the rule the claim states; a claim that depends on the initialisation or "
        "the minibatch order rests on several seeds."
        + (
            " <b>This is the --quick pass</b>: fewer steps and smaller data, so some "
            "claims are checked loosely."
            if quick
            else ""
        )
        + "</p>",
        *_provenance_html(provenance),
        f"<p><b>{count['confirmed']} of {count['claims']} claims confirmed.</b></p>",
    ]
    if count["refuted"]:
        parts.append("<p>Not confirmed by this run:</p><ul>")
        for ref in count["refuted"]:
            name, key = ref.split(".", 1)
            c = outcomes[name].claims[key]
            parts.append(f"<li><a href='#{e(name)}-{e(key)}'>{e(name)}</a>: {e(c.statement)}</li>")
        parts.append("</ul>")
    parts.append(
        "<table><tr><th>experiment</th><th>notes</th><th>claims confirmed</th><th>seconds</th>"
        "<th>of which compiling</th></tr>"
    )
    compiling = compiling or {}
    for name, o in outcomes.items():
        held = sum(bool(c.holds) for c in o.claims.values())
        parts.append(
            f"<tr><td><a href='#{e(name)}'>{e(name)}</a>: {e(o.title)}</td>"
            f"<td>{e(o.notes)}</td><td>{held} of {len(o.claims)}</td>"
            f"<td>{seconds.get(name, 0):.1f}</td>"
            f"<td>{f'{compiling[name]:.1f}' if name in compiling else '—'}</td></tr>"
        )
    parts.append("</table>")
    for name, o in outcomes.items():
        parts.append(f"<h2 id='{e(name)}'>{e(name)}: {e(o.title)}</h2>")
        parts.append(f"<p>Notes {e(o.notes)}. {e(o.summary)}</p>")
        parts.append(
            "<table><tr><th>claim</th><th>rule</th><th>runs</th><th>verdict</th>"
            "<th>evidence from this run</th></tr>"
        )
        for key, c in o.claims.items():
            parts.append(
                f"<tr id='{e(name)}-{e(key)}'><td>{e(c.statement)}<br>"
                f"<span class='source'>{e(c.source)}</span></td>"
                f"<td class='rule'>{e(c.rule)}</td><td>{c.seeds}</td>"
                f"<td>{_verdict(c.holds)}</td><td>{e(c.evidence)}</td></tr>"
            )
        parts.append("</table>")
        for f in o.figures:
            src = f"{e(name)}/{e(f.file)}"
            parts.append(
                f"<figure><a href='{src}'><img src='{src}' alt='{e(f.caption)}'></a>"
                f"<figcaption>{e(f.caption)}</figcaption></figure>"
            )
        parts.append(
            "<details><summary>key numbers</summary><table><tr><th>number</th><th>value</th></tr>"
        )
        for key, value in o.numbers.items():
            parts.append(f"<tr><td>{e(str(key))}</td><td>{e(_number(value))}</td></tr>")
        parts.append("</table></details><p class='top'><a href='#top'>back to the top</a></p>")
    parts.append("</body></html>")
    return "\n".join(parts)
