"""Write ``runs.csv``, and the report as Markdown and as one self-contained HTML file.

The report is first built as a list of blocks (:class:`Heading`, :class:`Para`, :class:`Table`,
:class:`Image`), then rendered twice, so that ``report.md`` and ``report.html`` always say the same.
"""

from __future__ import annotations

import base64
import csv
import html
from dataclasses import dataclass, field
from pathlib import Path

from ganlab.report.collect import Run
from ganlab.report.stats import (
    COLLAPSE_DEFINITION,
    FAILED_DEFINITION,
    SEED,
    Config,
    Stats,
    is_collapsed,
)

UNDEFINED = "—"


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str
    strong: bool = False


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    title: str
    path: Path


Block = Heading | Para | Table | Image


@dataclass
class Report:
    """Everything the report shows; ``configs`` are ranked best first."""

    sweep_dir: Path
    runs: list[Run]
    params: list[str]
    configs: list[Config]
    metric: str | None
    higher: bool | None
    direction_source: str
    metrics: list[str]
    plots: dict[str, Path] = field(default_factory=dict)

    @property
    def config_params(self) -> list[str]:
        return [p for p in self.params if p != SEED]


def fmt(value: float | int | None) -> str:
    """4 significant digits; ``—`` for an undefined value."""
    return UNDEFINED if value is None else f"{value:.4g}"


def fmt_ci(summary: Stats) -> str:
    """``± h [lo, hi]``; says why when undefined."""
    if summary.ci is None:
        return "undefined (n=1)" if summary.n == 1 else UNDEFINED
    low, high = summary.mean - summary.ci, summary.mean + summary.ci
    return f"± {fmt(summary.ci)} [{fmt(low)}, {fmt(high)}]"


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


def _header(report: Report) -> list[Block]:
    statuses = [r.status for r in report.runs]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    if report.metric is None:
        ranking = "Ranking metric: none (no run has a final metric)."
    else:
        direction = "higher" if report.higher else "lower"
        ranking = f"Ranking metric: {report.metric}, {direction} is better ({report.direction_source})."
    return [
        Heading(f"Sweep report: {report.sweep_dir.name}", 1),
        Para(
            f"Sweep folder: {report.sweep_dir}. Runs: {len(report.runs)} run folders ({counts}). "
            f"Swept parameters: {', '.join(report.params) or 'none'}."
        ),
        Para(ranking),
        Para(
            f"Definitions: {COLLAPSE_DEFINITION}; {FAILED_DEFINITION}. Statistics over the completed runs "
            "of a configuration that have a value: mean, sample std (ddof=1) and the 95% confidence "
            "interval of the mean, ± t(0.975, n-1)·std/√n (undefined for n=1)."
        ),
        Para(best_sentence(report), strong=True),
    ]


def best_sentence(report: Report) -> str:
    """The one-sentence answer, e.g. ``Best configuration: loss=hinge (metrics/modes 12.5 ± 3.1 ...)``."""
    best = report.configs[0] if report.configs and report.metric else None
    summary = best.stats(report.metric) if best else Stats(0)
    if best is None or summary.mean is None:
        return f"Best configuration: none (no completed run has a value of {report.metric or 'any metric'})."
    if summary.ci is None:
        spread = f"{fmt(summary.mean)}, a single completed run: CI undefined"
    else:
        spread = f"{fmt(summary.mean)} ± {fmt(summary.ci)}, mean ± 95% CI over {summary.n} completed runs"
    return f"Best configuration: {best.label} ({report.metric} {spread})."


def _config_cells(report: Report, config: Config) -> list[str]:
    return [config.params[p] for p in report.config_params] or [config.label]


def _config_headers(report: Report) -> list[str]:
    return report.config_params or ["configuration"]


def _rank(report: Report, metric: str | None) -> list[str]:
    """The rank of each (ranked) configuration; ``—`` for those without a value."""
    has = [metric is not None and c.stats(metric).mean is not None for c in report.configs]
    return [str(i + 1) if ok else UNDEFINED for i, ok in enumerate(has)]


def _stats_cells(summary: Stats) -> list[str]:
    return [fmt(summary.mean), fmt(summary.std), fmt_ci(summary), str(summary.n)]


def _ranking(report: Report) -> list[Block]:
    """Counts per configuration and the ranking metric's statistics, best first."""
    counts_headers = ["runs", "completed", "diverged", "failed", "collapsed"]
    stats_headers = ["mean", "std", "95% CI", "n"] if report.metric else []
    rows = []
    for rank, config in zip(_rank(report, report.metric), report.configs, strict=True):
        counts = [str(v) for v in config.counts().values()]
        stats = _stats_cells(config.stats(report.metric)) if report.metric else []
        rows.append([rank, *_config_cells(report, config), *counts, *stats])
    title = f"Ranking by {report.metric}" if report.metric else "Configurations"
    return [Heading(title), Table(["rank", *_config_headers(report), *counts_headers, *stats_headers], rows)]


def _other_metrics(report: Report) -> list[Block]:
    """One table per other metric, in the order of the ranking."""
    blocks: list[Block] = []
    for metric in (m for m in report.metrics if m != report.metric):
        rows = [
            [rank, *_config_cells(report, c), *_stats_cells(c.stats(metric))]
            for rank, c in zip(_rank(report, report.metric), report.configs, strict=True)
        ]
        blocks += [
            Heading(metric, 3),
            Table(["rank", *_config_headers(report), "mean", "std", "95% CI", "n"], rows),
        ]
    return [Heading("Other metrics"), *blocks] if blocks else []


def _first_line(text: str | None, width: int = 100) -> str:
    return text.strip().splitlines()[0][:width] if text and text.strip() else ""


def _runs(report: Report) -> list[Block]:
    """Every run folder, so that failed and missing runs are visible."""
    extra = [report.metric] if report.metric else []
    rows = [
        [
            r.name,
            *(r.overrides.get(p, "") for p in report.params),
            r.status,
            str(r.summary.get("g_steps", "")),
            fmt(r.summary.get("wall_s")),
            _collapsed_cell(r),
            *(fmt(r.metrics.get(m)) for m in extra),
            _first_line(r.error),
        ]
        for r in report.runs
    ]
    headers = ["run", *report.params, "status", "g_steps", "wall_s", "collapsed", *extra, "error"]
    return [Heading("Runs"), Table(headers, rows)]


PLOT_TITLES = {
    "curves": "Metrics against generator steps (completed runs; line: mean over seeds, band: min-max)",
    "finals": "Final metrics per configuration (dots: seeds; bar: mean and 95% CI)",
    "samples": "Final samples of each configuration (first seed)",
}


def build(report: Report) -> list[Block]:
    """The report's blocks: header, ranking, other metrics, runs, plots."""
    plots = [Image(PLOT_TITLES[name], path) for name, path in report.plots.items()]
    return [
        *_header(report),
        *_ranking(report),
        *_other_metrics(report),
        *_runs(report),
        *([Heading("Plots"), *plots] if plots else []),
    ]


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
)


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        text = html.escape(block.text)
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
