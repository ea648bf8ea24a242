"""The capacity plan's leadership page: HTML + Markdown, and plan.json (issue 13 item 5).

Verdict first per milestone (ready / needs X / not ready / inconclusive), then the chart of
required capacity vs users, then the tables: each milestone's resources, throughput per
route, the measured demands, per-persona rates, the backtest, the seed's formula and its §7
infrastructure beside the plan, assumptions and what was not measured.  Every number is
tagged *measured* or *projected*.  Same rules as the run report (reports/html.py): inline
CSS, the chart as a data URI, no script, no external reference: the page makes no network
request.

Tables are built once (``reports.plan_tables``) and rendered here to both HTML and
Markdown, so the two never disagree; plan.json is ``reports.plan_json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path

from analysis.plan import CapacityPlan
from reports import plan_charts
from reports.html import CSS, tag
from reports.images import img
from reports.plan_json import jsonable, to_dict
from reports.plan_tables import Table, tables, verdict_rows

#: A projected "ready" is never drawn as a pass (README "Reading a verdict"): the projected colours.
VERDICT_CLASS = {"ready": "PROJECTED-PASS", "not ready": "PROJECTED-FAIL"}


@dataclass
class PlanPaths:
    html: Path
    md: Path
    json: Path


def _verdict_class(m) -> str:
    """A qualified "ready" (more cores assumed, unreliable) is not drawn in the pass colour."""
    return "PROJECTED" if m.tags else VERDICT_CLASS.get(m.verdict, "PROJECTED")


def _tag(basis: str) -> str:
    """Only measured and projected numbers are labelled here (a seed figure is cited)."""
    return tag(basis) if basis in ("measured", "projected") else ""


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in t.rows
    )
    note = f'<p class="meta">{escape(t.note)}</p>' if t.note else ""
    return f"<h3>{escape(t.title)} {_tag(t.basis)}</h3><table><tr>{head}</tr>{body}</table>{note}"


def _img(png: bytes | str) -> str:
    if isinstance(png, str):
        return f'<p class="warn">{escape(png)}</p>'
    return img(png, "required capacity per resource vs users")


def render_html(plan: CapacityPlan, chart: bytes | str) -> str:
    cards = "".join(
        f'<div class="verdict v-{_verdict_class(m)}">'
        f'<div class="big">{escape(m.milestone)}: {escape(m.headline)} (projected)</div>'
        f"<p>{m.users:,} users (phase {m.phase} gate load) · {_tag('projected')} · "
        f"{escape(m.verdict_text)}</p>"
        + "".join(f'<p class="warn">{escape(c)}</p>' for c in m.caveats)
        + ""
        f"<p>First to bind: {escape(row[4])}</p></div>"
        for m, row in zip(plan.milestones, verdict_rows(plan), strict=True)
    )
    title = ", ".join(f"{m.milestone} {m.headline}" for m in plan.milestones)
    lists = "".join(
        f"<h2>{escape(title)}</h2><ul>" + "".join(f"<li>{escape(x)}</li>" for x in items) + "</ul>"
        for title, items in (
            ("Where the seed and the measurement disagree", plan.findings),
            ("Assumptions (and where they break)", plan.assumptions),
            ("Not measured (never invented)", plan.demands.missing),
            ("Warnings", plan.warnings),
        )
        if items
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>loadgate capacity plan — {escape(title)}</title>
<style>{CSS} h3{{font-size:14px;margin:18px 0 4px}}</style></head>
<body><main>
<h1>Blue Harvests — capacity plan for {escape(", ".join(m.milestone for m in plan.milestones))}</h1>
<div class="meta">from run(s) {escape(", ".join(plan.run_ids))} · profile(s)
{escape(", ".join(sorted(set(plan.profiles))))} · planning utilisation {plan.utilisation:.0%}
(seed §6.3 HPA target) · every milestone number is {_tag("projected")} from demands
{_tag("measured")} on this machine</div>
{f'<p class="warn">{escape(plan.unreliable)}</p>' if plan.unreliable else ""}
{cards}
<h2>Required capacity vs users</h2>{_img(chart)}
{"".join(_html_table(t) for t in tables(plan))}
{lists}
<p class="meta">Demands: statsmodels OLS with Newey–West (HAC) intervals on 1 Hz samples
of steady-state steps; milestone intervals by drawing the demands and per-user rates
together. <i>measured</i> = from the run; <i>projected</i> = operational laws applied beyond
the measured load, never a measurement.</p>
</main></body></html>
"""


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(plan: CapacityPlan) -> str:
    lines = [
        "## loadgate capacity plan — "
        + ", ".join(f"{m.milestone} **{m.headline}**" for m in plan.milestones),
        "",
        f"From run(s) `{', '.join(plan.run_ids)}`; every milestone number is *projected* from "
        f"demands *measured* on this machine; planning utilisation {plan.utilisation:.0%}.",
        "",
        *([f"**{plan.unreliable}**", ""] if plan.unreliable else []),
        "| milestone | load | verdict (projected) | why | first to bind |",
        "|---|---|---|---|---|",
        *["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in verdict_rows(plan)],
        "",
    ]
    for t in tables(plan):
        lines += [f"### {t.title} ({t.basis})" if t.basis else f"### {t.title}", ""]
        lines.append("| " + " | ".join(t.header) + " |")
        lines.append("|" + "---|" * len(t.header))
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
        if t.note:
            lines += ["", t.note]
        lines.append("")
    for title, items in (
        ("Where the seed and the measurement disagree", plan.findings),
        ("Assumptions (and where they break)", plan.assumptions),
        ("Not measured (never invented)", plan.demands.missing),
        ("Warnings", plan.warnings),
    ):
        if items:
            lines += [f"### {title}", "", *[f"- {x}" for x in items], ""]
    return "\n".join(lines)


def write(plan: CapacityPlan, out_dir: Path) -> PlanPaths:
    """plan.html, plan.md and plan.json into ``out_dir`` (created)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = plan_charts.chart_or_reason(plan)
    if isinstance(chart, str):
        plan.warnings.append(chart)
    paths = PlanPaths(out_dir / "plan.html", out_dir / "plan.md", out_dir / "plan.json")
    paths.html.write_text(render_html(plan, chart), encoding="utf-8")
    paths.md.write_text(render_markdown(plan), encoding="utf-8")
    paths.json.write_text(json.dumps(jsonable(to_dict(plan)), indent=2, allow_nan=False))
    return paths


__all__ = ["PlanPaths", "render_html", "render_markdown", "to_dict", "write"]
