"""Write ``runs.csv``, and the report as Markdown and as one self-contained HTML file.

The report is first built as a list of blocks (:class:`Heading`, :class:`Para`, :class:`Table`,
:class:`Image`), then rendered twice, so that ``report.md`` and ``report.html`` always say the same.
"""

from __future__ import annotations

import base64
import csv
import html
from dataclasses import dataclass
from pathlib import Path

from ganlab.report.collect import Run
from ganlab.report.stats import is_collapsed

UNDEFINED = "—"


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str
    strong: bool = False
    warning: bool = False  # shown in a box: the reader must not miss it


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    title: str
    path: Path


Block = Heading | Para | Table | Image


def fmt(value: float | int | None) -> str:
    """4 significant digits; ``—`` for an undefined value."""
    return UNDEFINED if value is None else f"{value:.4g}"


def _collapsed_cell(run: Run) -> str:
    return {True: "yes", False: "no", None: ""}[is_collapsed(run)]


def write_runs_csv(runs: list[Run], params: list[str], path: Path) -> Path:
    """One row per run folder: name, swept parameters, status, g_steps, wall_s, collapsed (yes/no; empty:
    not applicable), every final metric (full precision; empty: undefined) and the error on one line."""
    metrics = sorted({k for r in runs for k in r.metrics}, key=lambda k: (not k.startswith("metrics/"), k))
    header = ["run", *params, "status", "g_steps", "wall_s", "collapsed", *metrics, "error"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in runs:
            writer.writerow(
                [
                    r.name,
                    *(r.overrides.get(p, "") for p in params),
                    r.status,
                    r.summary.get("g_steps", ""),
                    r.summary.get("wall_s", ""),
                    _collapsed_cell(r),
                    *(_cell(r.metrics.get(m)) for m in metrics),
                    " ".join((r.error or "").split()),
                ]
            )
    return path


def _cell(value: float | None) -> str:
    return "" if value is None else repr(value)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    """Markdown; images are linked by file name (they sit next to report.md)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Para):
            out.append(f"**{block.text}**" if block.strong else block.text)
        elif isinstance(block, Table):
            lines = [block.headers, ["---"] * len(block.headers), *block.rows]
            out.append("\n".join("| " + " | ".join(_md_cell(c) for c in line) + " |" for line in lines))
        else:
            out.append(f"{block.title}\n\n![{block.title}]({block.path.name})")
    return "\n\n".join(out) + "\n"


STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
    "th{background:#f0f0f0}img{max-width:100%}"
    ".warn{background:#fff3cd;border:1px solid #e0b000;padding:6px 10px}"
)


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        text = html.escape(block.text)
        if block.warning:
            return f'<p class="warn"><strong>Warning:</strong> {text}</p>'
        return f"<p><strong>{text}</strong></p>" if block.strong else f"<p>{text}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
        rows = ("".join(f"<td>{html.escape(c)}</td>" for c in row) for row in block.rows)
        body = "".join(f"<tr>{row}</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    data = base64.b64encode(block.path.read_bytes()).decode("ascii")
    title = html.escape(block.title)
    image = f'<img alt="{title}" src="data:image/png;base64,{data}">'
    return f"<figure>{image}<figcaption>{title}</figcaption></figure>"


def to_html(blocks: list[Block], title: str) -> str:
    """One self-contained HTML page: the PNG plots are embedded as base64 data URIs."""
    body = "\n".join(_html_block(b) for b in blocks)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
