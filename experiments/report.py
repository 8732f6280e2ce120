"""What an experiment returns, and the pages made from it: ``results.json`` per experiment
and the ``index.html`` a person reads.

Every claim's verdict is a boolean computed by the experiment from its run; the page only
shows it.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, NamedTuple

from jaxnn import checkpoint


class Claim(NamedTuple):
  """A seed claim checked by a run: ``statement``, whether it ``holds`` in the run, and
  the ``evidence`` (the numbers behind the verdict, in words)."""
  statement: str
  holds: bool
  evidence: str


class Figure(NamedTuple):
  """A PNG in the experiment's folder and the paragraph that says what it shows."""
  file: str
  caption: str


class Outcome(NamedTuple):
  """An experiment's result: ``title``, the ``seeds`` it checks (e.g. "000, 002"), a
  ``summary`` paragraph, key ``numbers``, ``claims`` (name -> Claim) and ``figures``."""
  title: str
  seeds: str
  summary: str
  numbers: dict
  claims: dict
  figures: list


def unconfirmed(claims: dict, why: dict | None = None) -> str:
  """The summary's account of the claims a run refuted: for each false claim,
  " Not confirmed: <statement> (<evidence>)." followed by ``why[name]`` when given (the
  reason the run found). Empty when every claim held."""
  parts = []
  for name, claim in claims.items():
    if not claim.holds:
      reason = (why or {}).get(name, "")
      parts.append(f" Not confirmed: {claim.statement} ({claim.evidence})."
                   + (f" {reason}" if reason else ""))
  return "".join(parts)


def as_json(outcome: Outcome) -> dict:
  """The ``results.json`` of one experiment: numbers, and each claim as a boolean with
  its statement and evidence."""
  return checkpoint.plain({
      "title": outcome.title, "seeds": outcome.seeds, "summary": outcome.summary,
      "numbers": outcome.numbers,
      "claims": {name: bool(c.holds) for name, c in outcome.claims.items()},
      "claim_details": {name: c._asdict() for name, c in outcome.claims.items()},
      "figures": [f.file for f in outcome.figures],
  })


def write(folder: Path, outcome: Outcome) -> Path:
  """Writes ``folder/results.json`` and returns its path."""
  return checkpoint.write_json(folder / "results.json", as_json(outcome))


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }
h2 { border-top: 1px solid #ccc; padding-top: 1em; }
img { max-width: 100%; border: 1px solid #eee; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
.yes { color: #176b2c; font-weight: bold; } .no { color: #a31515; font-weight: bold; }
.caption { margin: 0.2em 0 1.2em; }
"""


def _number(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  if isinstance(value, (list, tuple)):
    return ", ".join(_number(v) for v in value)
  return str(value)


def index_html(outcomes: dict, seconds: dict, quick: bool) -> str:
  """The report page: a table of contents with every claim's verdict, then per
  experiment its summary, claims, key numbers and figures with their captions."""
  e = html.escape
  parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>jaxnn experiments"
           f"</title><style>{_STYLE}</style></head><body>",
           "<h1>jaxnn experiments</h1>",
           "<p>Each experiment reproduces claims of the course notes with jaxnn and checks "
           "them against its own run: a verdict below is computed from the numbers, never "
           "written by hand." + (" <b>This is the --quick pass</b>: fewer steps and "
                                 "smaller data, so some claims are checked loosely."
                                 if quick else "") + "</p>",
           "<table><tr><th>experiment</th><th>seeds</th><th>claims confirmed</th>"
           "<th>seconds</th></tr>"]
  for name, o in outcomes.items():
    held = sum(bool(c.holds) for c in o.claims.values())
    parts.append(f"<tr><td><a href='#{e(name)}'>{e(name)}</a>: {e(o.title)}</td>"
                 f"<td>{e(o.seeds)}</td><td>{held} of {len(o.claims)}</td>"
                 f"<td>{seconds.get(name, 0):.1f}</td></tr>")
  parts.append("</table>")
  for name, o in outcomes.items():
    parts.append(f"<h2 id='{e(name)}'>{e(name)}: {e(o.title)}</h2>")
    parts.append(f"<p>Seeds {e(o.seeds)}. {e(o.summary)}</p>")
    parts.append("<table><tr><th>claim</th><th>verdict</th><th>evidence from this run"
                 "</th></tr>")
    for c in o.claims.values():
      verdict = ("<span class='yes'>confirmed</span>" if c.holds
                 else "<span class='no'>not confirmed</span>")
      parts.append(f"<tr><td>{e(c.statement)}</td><td>{verdict}</td>"
                   f"<td>{e(c.evidence)}</td></tr>")
    parts.append("</table><table><tr><th>number</th><th>value</th></tr>")
    for key, value in o.numbers.items():
      parts.append(f"<tr><td>{e(str(key))}</td><td>{e(_number(value))}</td></tr>")
    parts.append("</table>")
    for f in o.figures:
      parts.append(f"<img src='{e(name)}/{e(f.file)}' alt='{e(f.caption)}'>"
                   f"<p class='caption'>{e(f.caption)}</p>")
  parts.append("</body></html>")
  return "\n".join(parts)
