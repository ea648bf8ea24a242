"""The comparison report of one reproduction: ``reproduce.json``, ``reproduce.md`` and
``reproduce.html`` in the reproduction's directory.

One dictionary (:func:`document`) is the single source of all three, so the JSON a CI job
reads and the page a person reads cannot disagree. Verdict first, then the seed's
prediction beside the measurement, both breaking points with their brackets, charts over
load (the explaining metric, P95, error rate; steps where the machine saturated are drawn
hollow: they speak for the machine, not the architecture), the per-step table, and links
to both run directories and their own reports. Same self-contained style as the run
report (``reports.html``): inline CSS, PNGs as data URIs, no script, no network.
"""

from __future__ import annotations

import json
import math
import os
import re
from html import escape
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.reproduce.breaking import BreakingPoint, StepResult  # noqa: E402
from analysis.reproduce.metrics import Metric  # noqa: E402
from analysis.reproduce.outcome import Outcome, SideResult  # noqa: E402
from analysis.reproduce.registry import Reproduction  # noqa: E402
from reports import fmt  # noqa: E402
from reports.charts import png_bytes  # noqa: E402
from reports.html import CSS  # noqa: E402
from reports.images import img  # noqa: E402
from runconfig.reproduce import ReproducePlan  # noqa: E402

JSON_FILE, MD_FILE, HTML_FILE = "reproduce.json", "reproduce.md", "reproduce.html"
VERDICT_CLASS = {"confirmed": "v-PASS", "refuted": "v-FAIL", "inconclusive": "v-INCONCLUSIVE"}
COLORS = {"before": "tab:red", "after": "tab:blue"}


def _num(v: float | None) -> float | None:
    """JSON has no inf/nan: an infinite excess or a missing value is null."""
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def _breaking(bp: BreakingPoint) -> dict[str, Any]:
    return {
        "broke": bp.broke,
        "step": bp.step,
        "load": bp.load,
        "interval": list(bp.interval) if bp.interval else None,
        "binding_constraint": bp.binding,
        "failed_criteria": bp.failed,
        "held_up_to": bp.held_up_to,
        "machine_saturated_at": bp.saturated_at,
        "before_saturation": bp.credible if bp.broke else None,
    }


def _step(s: StepResult) -> dict[str, Any]:
    return {
        "name": s.name,
        "load": s.load,
        "requests": s.requests,
        "p95_ms": _num(s.p95_ms),
        "error_rate": s.error_rate,
        "host_cpu_percent": _num(s.host_cpu_percent),
        "valid": s.valid,
        "invalid": s.invalid,
        "criteria": [
            {
                "criterion": c.description,
                "status": c.status,
                "value": _num(c.value),
                "ci": [_num(x) for x in c.ci] if c.ci else None,
            }
            for c in s.criteria
        ],  # fmt: skip
        "metrics": {k: _num(v) for k, v in s.metrics.items()},
    }


def _pooled(side: SideResult, metric: Metric, valid_only: bool) -> float | None:
    """Mean of the metric over the side's steps (only those below saturation, if asked)."""
    steps = side.valid_steps if valid_only else side.steps
    values = [v for s in steps if (v := s.metrics.get(metric.key)) is not None]
    return sum(values) / len(values) if values else None


def _pair(before: SideResult, after: SideResult, metric: Metric) -> dict[str, float | None]:
    return {
        "before": _num(_pooled(before, metric, False)),
        "after": _num(_pooled(after, metric, False)),
        "before_valid_steps": _num(_pooled(before, metric, True)),
        "after_valid_steps": _num(_pooled(after, metric, True)),
    }


def _side(side: SideResult, repro: Reproduction, base: Path) -> dict[str, Any]:
    config = repro.before if side.label == "before" else repro.after
    gate = side.analysis.verdict if side.analysis is not None else None
    return {
        "configuration": side.configuration,
        "profile": config.profile,
        "overrides": config.overrides,
        "run_dir": os.path.relpath(side.run_dir, base),
        "report": os.path.relpath(side.run_dir / "report" / "report.html", base),
        "status": side.status,
        "gate_verdict": str(gate) if gate is not None else None,
        "breaking_point": _breaking(side.breaking),
        "steps": [_step(s) for s in side.steps],
    }


def document(
    repro: Reproduction,
    before: SideResult,
    after: SideResult,
    outcome: Outcome,
    plan: ReproducePlan,
    phase: int,
    quick: bool,
    out: Path,
) -> dict[str, Any]:
    """Everything the three reports show, as one JSON-ready dictionary."""
    return {
        "reproduction": repro.name,
        "seed_section": repro.section,
        "description": repro.description,
        "claim": repro.claim,
        "prediction": repro.prediction,
        "verdict": outcome.verdict.value,
        "reason": outcome.reason,
        "exit_code": outcome.verdict.exit_code,
        "quick": quick,
        "phase": phase,
        "plan": plan.model_dump(),
        "metrics": [{"key": m.key, "label": m.label, "unit": m.unit} for m in repro.metrics],
        "metric": repro.metric.key,
        "metric_pair": {m.key: _pair(before, after, m) for m in repro.metrics},
        "sides": {s.label: _side(s, repro, out) for s in (before, after)},
        "basis": "measured: every value comes from the two runs' records, steady-state "
        "windows only; metric_pair is the mean over each side's steps (and over its valid "
        "steps, those below the load where the machine saturated: what the verdict uses)",
    }


# --- charts -----------------------------------------------------------------------------


def _series(doc: dict, label: str, value) -> tuple[list, list, list]:
    steps = doc["sides"][label]["steps"]
    pts = [(s["load"], value(s), s["valid"]) for s in steps]
    pts = [p for p in pts if p[1] is not None]
    return [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]


def _panel(ax, doc: dict, value, title: str, ylabel: str, log: bool = False) -> None:
    for label in ("before", "after"):
        side = doc["sides"][label]
        x, y, valid = _series(doc, label, value)
        color = COLORS[label]
        ax.plot(x, y, "-", color=color, lw=1, label=f"{label}: {side['configuration']}")
        ax.scatter(
            x, y, s=28, zorder=3, edgecolors=color,
            facecolors=[color if v else "white" for v in valid],
        )  # fmt: skip
        bp = side["breaking_point"]
        if bp["broke"] and bp["interval"]:
            lo, hi = bp["interval"]
            ax.axvspan(lo, hi, color=color, alpha=0.08)
            ax.axvline(hi, color=color, ls="--", lw=0.8)
    if log and any(
        v for lab in ("before", "after") for v in _series(doc, lab, value)[1] if v and v > 0
    ):
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("load (users)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)


def _metric_value(meta: dict):
    """Step -> the metric's value as plotted (a share in %, like its axis label)."""
    scale = 100.0 if meta["unit"] == "%" else 1.0

    def value(step: dict) -> float | None:
        v = step["metrics"].get(meta["key"])
        return None if v is None else v * scale

    return value


def charts(doc: dict) -> list[tuple[str, bytes | str]]:
    """(caption, PNG) pairs; a chart that cannot be drawn is its reason (a string)."""
    out: list[tuple[str, bytes | str]] = []
    panels = [(_metric_value(m), m["label"], m["unit"] or "count", False) for m in doc["metrics"]]
    panels += [
        (lambda s: s["p95_ms"], "P95 latency (all routes)", "ms (log)", True),
        (lambda s: s["error_rate"] * 100, "error rate", "%", False),
    ]
    try:
        fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.2))
        for ax, (value, title, unit, log) in zip(axes, panels, strict=True):
            _panel(ax, doc, value, title, unit, log)
        axes[0].legend(fontsize=7, loc="best")
        fig.suptitle(
            "Before vs after over load (measured; hollow = machine saturated, dashed = "
            "breaking point, band = its bracket)",
            fontsize=9,
        )
        out.append(("before vs after over load", png_bytes(fig)))
    except Exception as exc:  # noqa: BLE001 - a chart illustrates the tables; never fatal
        plt.close("all")
        out.append(("before vs after over load", f"chart not drawn: {type(exc).__name__}: {exc}"))
    return out


# --- Markdown ---------------------------------------------------------------------------


def _bp_text(bp: dict) -> str:
    sat = (
        f"; machine saturated at {bp['machine_saturated_at']:,.0f} users"
        if bp["machine_saturated_at"] is not None
        else ""
    )
    if bp["broke"]:
        lo, hi = bp["interval"]
        return (
            f"broke at **{hi:,.0f} users** (between {lo:,.0f} and {hi:,.0f}; step "
            f"`{bp['step']}`), binding: {bp['binding_constraint']}{sat}"
        )
    held = bp["held_up_to"]
    held_text = (
        f"held every criterion up to {held:,.0f} users"
        if held
        else "no criterion failed, but no step had every criterion decided"
    )
    return f"did not break ({held_text}){sat}"


def _metric_text(doc: dict, key: str, value: float | None) -> str:
    meta = next(m for m in doc["metrics"] if m["key"] == key)
    if value is None:
        return "not measured"
    if meta["unit"] == "%":
        return f"{value:.1%}"
    return f"{value:,.2f} {meta['unit']}".strip()


def _pair_text(doc: dict, meta: dict, pair: dict, label: str) -> str:
    every = _metric_text(doc, meta["key"], pair[label])
    valid = _metric_text(doc, meta["key"], pair[f"{label}_valid_steps"])
    return f"{every} (valid steps: {valid})"


def render_markdown(doc: dict) -> str:
    v = doc["verdict"]
    lines = [
        f"## loadgate reproduce `{doc['reproduction']}` (seed {doc['seed_section']}): "
        f"**{v.upper()}**",
        "",
        f"> {doc['reason']}",
        "",
        f"**Claim** ({doc['seed_section']}): {doc['claim']}  ",
        f"**Seed predicts:** {doc['prediction']}  ",
        f"**Plan:** {'quick; ' if doc['quick'] else ''}{doc['plan']['steps']} steps to "
        f"{doc['plan']['users']:,} users, judged by phase {doc['phase']}'s gate criteria",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| configuration | `{doc['sides']['before']['configuration']}` | "
        f"`{doc['sides']['after']['configuration']}` |",
        f"| breaking point | {_bp_text(doc['sides']['before']['breaking_point'])} | "
        f"{_bp_text(doc['sides']['after']['breaking_point'])} |",
    ]
    for m in doc["metrics"]:
        pair = doc["metric_pair"][m["key"]]
        lines.append(
            f"| {m['label']} (mean of steps; of valid steps) | {_pair_text(doc, m, pair, 'before')}"
            f" | {_pair_text(doc, m, pair, 'after')} |"
        )
    lines.append(
        f"| run directory | [{doc['sides']['before']['run_dir']}]"
        f"({doc['sides']['before']['report']}) | [{doc['sides']['after']['run_dir']}]"
        f"({doc['sides']['after']['report']}) |"
    )
    for label in ("before", "after"):
        side = doc["sides"][label]
        lines += [
            "",
            f"### {label}: `{side['configuration']}` (gate verdict of the run: "
            f"{side['gate_verdict']})",
            "",
            "| load | requests | P95 | errors | failed criteria | "
            + " | ".join(m["label"] for m in doc["metrics"])
            + " | machine |",
            "|---:|---:|---:|---:|---|" + "---:|" * len(doc["metrics"]) + "---|",
        ]
        for s in side["steps"]:
            failed = ", ".join(c["criterion"] for c in s["criteria"] if c["status"] == "fail")
            machine = "ok" if s["valid"] else "saturated: " + "; ".join(s["invalid"])
            values = " | ".join(
                _metric_text(doc, m["key"], s["metrics"].get(m["key"])) for m in doc["metrics"]
            )
            lines.append(
                f"| {s['load']:,.0f} | {s['requests']:,} | {fmt.ms(s['p95_ms'])} | "
                f"{fmt.pct(s['error_rate'])} | {failed or '—'} | {values} | {machine} |"
            )
    lines += ["", f"_{doc['basis']}._"]
    return "\n".join(lines) + "\n"


# --- HTML -------------------------------------------------------------------------------


def _md_bold(text: str) -> str:
    """A Markdown cell's text as HTML (only ``**bold**`` and backticks occur there)."""
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escape(text)).replace("`", "")


def render_html(doc: dict, images: list[tuple[str, bytes | str]] | None = None) -> str:
    images = charts(doc) if images is None else images
    v = doc["verdict"]
    b, a = doc["sides"]["before"], doc["sides"]["after"]
    rows = [
        ("configuration", escape(b["configuration"]), escape(a["configuration"])),
        ("breaking point", _md_bold(_bp_text(b["breaking_point"])),
         _md_bold(_bp_text(a["breaking_point"]))),
    ]  # fmt: skip
    for m in doc["metrics"]:
        pair = doc["metric_pair"][m["key"]]
        rows.append(
            (
                f"{escape(m['label'])} <span class=meta>(mean of steps; of valid steps)</span>",
                escape(_pair_text(doc, m, pair, "before")),
                escape(_pair_text(doc, m, pair, "after")),
            )
        )
    rows.append(
        (
            "run directory",
            f'<a href="{escape(b["report"])}">{escape(b["run_dir"])}</a> '
            f"<span class=meta>gate {escape(str(b['gate_verdict']))}</span>",
            f'<a href="{escape(a["report"])}">{escape(a["run_dir"])}</a> '
            f"<span class=meta>gate {escape(str(a['gate_verdict']))}</span>",
        )
    )
    table = "".join(f"<tr><th>{k}</th><td>{x}</td><td>{y}</td></tr>" for k, x, y in rows)
    steps = "".join(_html_steps(doc, label) for label in ("before", "after"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>loadgate reproduce {escape(doc["reproduction"])} — {escape(v)}</title>
<style>{CSS}</style></head><body><main>
<h1>Reproduce {escape(doc["reproduction"])} (seed {escape(doc["seed_section"])})</h1>
<div class="meta">{escape(doc["description"])} · {"quick plan · " if doc["quick"] else ""}
{doc["plan"]["steps"]} steps to {doc["plan"]["users"]:,} users · phase {doc["phase"]}'s gate
criteria decide each step</div>
<div class="verdict {VERDICT_CLASS[v]}"><div class="big">{escape(v.upper())}</div>
<p>{escape(doc["reason"])}</p></div>
<h2>The seed's prediction beside the measurement <span class="tag measured">measured</span></h2>
<p><b>Claim ({escape(doc["seed_section"])}):</b> {escape(doc["claim"])}<br>
<b>Seed predicts:</b> {escape(doc["prediction"])}</p>
<table><tr><th></th><th>before</th><th>after</th></tr>{table}</table>
<h2>Over load <span class="tag measured">measured</span></h2>
{"".join(img(p, c) for c, p in images)}
<h2>Steps (steady-state windows)</h2>{steps}
<p class="meta">{escape(doc["basis"])}. A breaking point is the first step where a gate
criterion failed with its interval on the wrong side (a count: above its limit); its bracket
runs from the last step that held every criterion. Steps at or above the load where a
validity check failed (generator lag or CPU, Little's law, window coverage) describe the
machine and are not used for the verdict.</p>
</main></body></html>
"""


def _html_steps(doc: dict, label: str) -> str:
    side = doc["sides"][label]
    head = "".join(f"<th>{escape(m['label'])}</th>" for m in doc["metrics"])
    rows = []
    for s in side["steps"]:
        failed = ", ".join(c["criterion"] for c in s["criteria"] if c["status"] == "fail")
        machine = "ok" if s["valid"] else "saturated: " + "; ".join(s["invalid"])
        values = "".join(
            f"<td class=n>{escape(_metric_text(doc, m['key'], s['metrics'].get(m['key'])))}</td>"
            for m in doc["metrics"]
        )
        rows.append(
            f"<tr><td class=n>{s['load']:,.0f}</td><td class=n>{s['requests']:,}</td>"
            f"<td class=n>{fmt.ms(s['p95_ms'])}</td><td class=n>{fmt.pct(s['error_rate'])}</td>"
            f"<td>{escape(failed) or '—'}</td>{values}"
            f"<td class={'meta' if s['valid'] else 'warn'}>{escape(machine)}</td></tr>"
        )
    return (
        f"<h3>{label}: {escape(side['configuration'])}</h3><table><tr><th>load</th>"
        f"<th>requests</th><th>P95</th><th>errors</th><th>failed criteria</th>{head}"
        f"<th>machine</th></tr>{''.join(rows)}</table>"
    )


def write(doc: dict, out: Path) -> dict[str, Path]:
    """reproduce.json, reproduce.md and reproduce.html into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / JSON_FILE, "md": out / MD_FILE, "html": out / HTML_FILE}
    paths["json"].write_text(json.dumps(doc, indent=2, allow_nan=False))
    paths["md"].write_text(render_markdown(doc))
    paths["html"].write_text(render_html(doc), encoding="utf-8")
    return paths


__all__ = ["charts", "document", "render_html", "render_markdown", "write"]
