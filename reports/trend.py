"""The trend report: self-contained HTML (charts as data URIs), Markdown and JSON.

Like the run report, the HTML has no script and no external reference.  Runs on the
trend line (PASS, FAIL, NO GATE) are points joined by a line, with their 95 % intervals
as error bars; a regression (``analysis.compare`` against the previous point) is a red
marker; INVALID, INCONCLUSIVE and PROJECTED runs are grey bands labelled with their
verdict, never points.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.trend import SCHEMA, Trend, TrendPoint  # noqa: E402
from reports import fmt  # noqa: E402
from reports.charts import SIZE, png_bytes  # noqa: E402
from reports.html import CSS  # noqa: E402
from reports.images import img  # noqa: E402

TREND_CSS = """
tr.regression td{background:#fbe9e7} tr.offline td{color:#6b7280}
.tv{font-weight:600}.tv-PASS{color:#1b7f3b}.tv-FAIL{color:#b3261e}.tv-INVALID{color:#5f2a86}
.tv-INCONCLUSIVE,.tv-PROJECTED,.tv-NO-GATE{color:#8a6d00}
.summary{padding:14px 18px;border-radius:8px;background:#f4f6f8;margin:12px 0}
"""


@dataclass
class TrendPaths:
    html: Path
    md: Path
    json: Path


def _label(p: TrendPoint) -> str:
    return f"{p.started_at[:16].replace('T', ' ')}\n{p.run_id[-24:]}"


def _offline_band(ax, i: int, p: TrendPoint) -> None:
    """A run that is not a point of the line: a grey band labelled with its verdict."""
    ax.axvspan(i - 0.4, i + 0.4, color="0.9", zorder=0)
    ax.text(
        i,
        0.5,
        p.verdict,
        rotation=90,
        ha="center",
        va="center",
        transform=ax.get_xaxis_transform(),
        fontsize=8,
        color="0.35",
    )


def _metric_chart(trend: Trend, title: str, ylabel: str, value, ci, limit=None) -> bytes:
    """One metric over the runs: the line through on-line points, bands for the rest."""
    pts = trend.points
    fig, ax = plt.subplots(figsize=SIZE)
    xs, ys, lo, hi = [], [], [], []
    for i, p in enumerate(pts):
        v = value(p)
        if not p.on_line:
            _offline_band(ax, i, p)
            continue
        if v is None:
            continue
        interval = ci(p)
        xs.append(i)
        ys.append(v)
        lo.append(max(v - interval[0], 0.0) if interval else 0.0)
        hi.append(max(interval[1] - v, 0.0) if interval else 0.0)
    if xs:
        ax.plot(xs, ys, "-", color="tab:blue", lw=1, zorder=1)
        ax.errorbar(
            xs,
            ys,
            yerr=[lo, hi],
            fmt="o",
            color="tab:blue",
            capsize=3,
            label="measured at the gate step (95% CI)",
            zorder=2,
        )
    reg = [(i, value(p)) for i, p in enumerate(pts) if p.regression and value(p) is not None]
    if reg:
        ax.plot(
            [r[0] for r in reg],
            [r[1] for r in reg],
            "v",
            color="tab:red",
            ms=11,
            label="regression vs the previous point",
            zorder=3,
        )
    if limit is not None:
        ax.axhline(limit, color="tab:red", ls="--", lw=0.8, label=f"gate limit {limit:g}")
    ax.set_xticks(range(len(pts)), [_label(p) for p in pts], fontsize=7)
    ax.set_xlim(-0.6, len(pts) - 0.4)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left")
    return png_bytes(fig)


def _binding_chart(trend: Trend) -> bytes:
    """The load at which the binding constraint is reached, its name beside each point."""
    fig, ax = plt.subplots(figsize=SIZE)
    pts = trend.points
    xs, ys = [], []
    for i, p in enumerate(pts):
        if not p.on_line:
            _offline_band(ax, i, p)
            continue
        if p.binding_load is None:
            continue
        xs.append(i)
        ys.append(p.binding_load)
        lo, hi = p.binding_ci or (p.binding_load, p.binding_load)
        hatch = p.binding_basis == "projected"
        ax.errorbar(
            [i],
            [p.binding_load],
            yerr=[[max(p.binding_load - lo, 0)], [max(hi - p.binding_load, 0)]],
            fmt="o",
            mfc="white" if hatch else "tab:purple",
            color="tab:purple",
            capsize=3,
        )
        ax.annotate(
            f"{p.binding} ({p.binding_basis})",
            (i, p.binding_load),
            textcoords="offset points",
            xytext=(4, 6),
            fontsize=7,
        )
    if xs:
        ax.plot(xs, ys, "-", color="tab:purple", lw=1, zorder=1)
    ax.set_xticks(range(len(pts)), [_label(p) for p in pts], fontsize=7)
    ax.set_xlim(-0.6, len(pts) - 0.4)
    ax.set_ylabel("load (users)")
    ax.set_title(
        "Binding constraint: load at which it is reached (open marker = projected)", fontsize=10
    )
    return png_bytes(fig)


def charts(trend: Trend) -> dict[str, bytes | str]:
    """Every trend chart as PNG bytes, or the reason it could not be drawn."""
    limit = next((p.p95_limit_ms for p in trend.points if p.p95_limit_ms is not None), None)
    draw = {
        "p95": lambda: _metric_chart(
            trend,
            "Gate P95 per run (measured)",
            "P95 (ms)",
            lambda p: p.p95_ms,
            lambda p: p.p95_ci,
            limit,
        ),
        "errors": lambda: _metric_chart(
            trend,
            "Error rate at the gate step (measured)",
            "error rate (%)",
            lambda p: None if p.error_rate is None else p.error_rate * 100,
            lambda p: None if p.error_rate_ci is None else tuple(x * 100 for x in p.error_rate_ci),
        ),
        "throughput": lambda: _metric_chart(
            trend,
            "Throughput at the gate step (measured)",
            "req/s",
            lambda p: p.throughput_rps,
            lambda p: p.throughput_ci,
        ),
        "binding": lambda: _binding_chart(trend),
    }
    out: dict[str, bytes | str] = {}
    for name, fn in draw.items():
        try:
            out[name] = fn()
        except Exception as exc:  # noqa: BLE001 - a chart illustrates the table below
            plt.close("all")
            out[name] = f"chart not drawn: {type(exc).__name__}: {exc}"
    return out


def _p95_cell(p: TrendPoint) -> str:
    if p.p95_ms is None:
        return "—"
    return (
        f"{fmt.ms(p.p95_ms)} {fmt.ci_ms(p.p95_ci)}"
        if p.p95_ci
        else f"{fmt.ms(p.p95_ms)} (no interval)"
    )


def _binding_cell(p: TrendPoint) -> str:
    if p.binding is None:
        return "—"
    if p.binding_load is None:
        return f"{p.binding} ({p.binding_basis})"
    where = f"{fmt.num(p.binding_load)} {fmt.ci_num(p.binding_ci)}".strip()
    return f"{p.binding} at {where} ({p.binding_basis})"


def _cells(p: TrendPoint) -> list[str]:
    """Plain-text cells of one run, shared by the HTML and Markdown tables."""
    errors = f"{fmt.pct(p.error_rate)} {fmt.ci_pct(p.error_rate_ci)}".strip()
    thr = "—" if p.throughput_rps is None else f"{p.throughput_rps:,.1f} "
    thr = f"{thr}{fmt.ci_num(p.throughput_ci, 1)}".strip()
    vs = "—"
    if p.comparison is not None:
        vs = f"{'REGRESSION' if p.regression else p.comparison} vs {p.baseline_id}"
    load = "—" if p.load is None else f"{fmt.num(p.load)} {p.load_unit}"
    return [
        p.started_at,
        p.run_id,
        p.verdict,
        load,
        _p95_cell(p),
        errors,
        thr,
        _binding_cell(p),
        vs,
        p.note,
    ]


HEAD = [
    "started",
    "run",
    "verdict",
    "gate load",
    "P95 [95% CI]",
    "errors [95% CI]",
    "req/s [95% CI]",
    "binding constraint",
    "vs previous point",
    "note",
]


def _headline(trend: Trend) -> str:
    on = sum(p.on_line for p in trend.points)
    reg = trend.regressions
    text = (
        f"{len(trend.points)} runs of phase {trend.phase}, {on} on the trend line, "
        f"{len(reg)} regression{'s' if len(reg) != 1 else ''}"
    )
    if reg:
        text += ": " + ", ".join(p.run_id for p in reg)
    return text


def render_html(trend: Trend) -> str:
    imgs = charts(trend)

    def chart(name: str, alt: str) -> str:
        return img(imgs[name], alt)

    rows = []
    for p in trend.points:
        cls = "regression" if p.regression else "" if p.on_line else "offline"
        cells = _cells(p)
        verdict = (
            f'<span class="tv tv-{escape(p.verdict.replace(" ", "-"))}">{escape(p.verdict)}</span>'
        )
        tds = [escape(c) for c in cells]
        tds[2] = verdict
        rows.append(
            f'<tr class="{cls}" data-run="{escape(p.run_id)}" '
            f'data-regression="{str(p.regression).lower()}" '
            f'data-on-line="{str(p.on_line).lower()}">'
            + "".join(f"<td>{c}</td>" for c in tds)
            + "</tr>"
        )
    notes = "".join(f"<li>{escape(n)}</li>" for n in trend.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>loadgate trend — phase {trend.phase}</title><style>{CSS}{TREND_CSS}</style></head>
<body><main>
<h1>Blue Harvests — phase {trend.phase} gate over time</h1>
<div class="summary">{escape(_headline(trend))}</div>
{f'<ul class="warn">{notes}</ul>' if notes else ""}
<p class="meta">Each point is one run's gate step (measured). Only PASS, FAIL and NO GATE
runs are points of the line; INVALID, INCONCLUSIVE and PROJECTED runs are grey bands: their
numbers describe the harness or decide nothing. A red marker is a regression against the
previous point, decided by the same test as <code>loadgate compare</code> (errors,
latency shift and tails, with tolerance).</p>
<h2>Gate P95</h2>{chart("p95", "gate P95 per run")}
<h2>Error rate</h2>{chart("errors", "error rate per run")}
<h2>Throughput at the gate load</h2>{chart("throughput", "throughput per run")}
<h2>Binding constraint</h2>{chart("binding", "binding constraint per run")}
<h2>Runs</h2>
<table><tr>{"".join(f"<th>{h}</th>" for h in HEAD)}</tr>{"".join(rows)}</table>
</main></body></html>
"""


def render_markdown(trend: Trend) -> str:
    lines = [f"## loadgate trend — phase {trend.phase}", "", f"**{_headline(trend)}**", ""]
    lines += [f"> {n}" for n in trend.notes]
    lines += ["", "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    for p in trend.points:
        cells = _cells(p)
        if p.regression:
            cells[8] = f"❌ **{cells[8]}**"
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "Only PASS, FAIL and NO GATE runs are points of the trend line; regressions are "
        "decided against the previous point by `loadgate compare`'s test. All values measured.",
    ]
    return "\n".join(lines) + "\n"


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def to_dict(trend: Trend) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "phase": trend.phase,
        "runs": [{k: _clean(v) for k, v in asdict(p).items()} for p in trend.points],
        "regressions": [p.run_id for p in trend.regressions],
        "notes": trend.notes,
    }


def write(trend: Trend, out_dir: Path) -> TrendPaths:
    """Write trend.html, trend.md and trend.json into ``out_dir`` (created).  Raises
    OSError when it cannot be written (the CLI turns it into one error line)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = TrendPaths(out_dir / "trend.html", out_dir / "trend.md", out_dir / "trend.json")
    paths.html.write_text(render_html(trend), encoding="utf-8")
    paths.md.write_text(render_markdown(trend), encoding="utf-8")
    paths.json.write_text(json.dumps(to_dict(trend), indent=2, allow_nan=False))
    return paths
