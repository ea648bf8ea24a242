"""Markdown summary sized for a CI step summary ($GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

from pathlib import Path

from analysis.analyze import AnalysisResult
from analysis.compare import Comparison
from reports import fmt

ICON = {
    "pass": "✅ pass",
    "fail": "❌ fail",
    "projected pass": "🔮 projected pass",
    "projected fail": "🔮 projected fail",
    "insufficient data": "❔ insufficient data",
    "inconclusive": "❔ inconclusive",
}


def render(r: AnalysisResult) -> str:
    lines = [
        f"## loadgate — phase {r.phase} gate: **{r.verdict}**",
        "",
        f"Run `{r.run_id}` · profile `{r.profile}` · {r.model} model · {r.n_records:,} requests",
        "",
        *[f"{line}  " for line in fmt.placement_lines(r.manifest)],
        "",
        *[f"> {n}  " for n in r.gate.notes()],
        f"> {r.headroom.sentence}",
        "",
    ]
    if r.gate.criteria:
        lines += [
            f"Gate load: {fmt.num(r.gate.gate_load)} {r.gate.load_unit} — "
            + (
                f"applied in step `{r.gate.step}` (measured)"
                if r.gate.step
                else "**not applied**: criteria are projected or undecided"
            ),
            "",
            "| criterion | value [95% CI] | basis | status | detail |",
            "|---|---|---|---|---|",
        ]
        for c in r.gate.criteria:
            lines.append(
                f"| {c.description} | {fmt.criterion_value(c.name, c.value, c.ci)} | "
                f"{c.basis} | {ICON.get(c.status, c.status)} | {c.detail} |"
            )
        lines.append("")
    lines += [
        "### Steps (steady-state windows, warm-up found by MSER-5 excluded; measured)",
        "",
        "| load | window | requests | req/s | P50 | P95 [CI] | P99 [CI] | max | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for st in r.steps:
        p50, p95, p99 = (st.latency.p(q) for q in (0.5, 0.95, 0.99))
        win = fmt.window(st.step.start_us - r.start_us, st.step.end_us - r.start_us)
        win += f" (warm-up {st.step.truncated_s:g} s)"
        lines.append(
            f"| {st.load:,.0f} | {win} | {st.n:,} | {st.throughput_rps:,.1f} | {_q(p50, False)} | "
            f"{_q(p95)} | {_q(p99)} | {fmt.ms(st.latency.max_ms)} | {fmt.pct(st.error_rate)} |"
        )
    if r.routes is not None and r.routes.endpoints:
        lines += [
            "",
            f"### Per route, whole run ({r.routes.description}; measured)",
            "",
            "| route | requests | req/s | P95 [CI] | P99 [CI] | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for e in r.routes.endpoints:
            lines.append(
                f"| {e.endpoint} | {e.n:,} | {e.throughput_rps:,.1f} | {_q(e.latency.p(0.95))} | "
                f"{_q(e.latency.p(0.99))} | {fmt.pct(e.error_rate)} |"
            )
    fit = r.usl
    lines += ["", "### Saturation", ""]
    lines.append(
        f"- Knee of P95 vs load: {fmt.num(r.knee.load)} users"
        if r.knee.load
        else f"- Knee: {r.knee.reason}"
    )
    lines.append(f"- {fmt.usl_summary(fit)}")
    lines += [
        "",
        "### Headroom",
        "",
        "| constraint | kind | limit | reached at (users) | basis |",
        "|---|---|---|---|---|",
    ]
    for c in r.headroom.constraints:
        bind = " **(binding)**" if r.headroom.binding is c else ""
        ext = " (projected above the measured load)" if c.extrapolated else ""
        lines.append(
            f"| {c.name}{bind} | {fmt.constraint_kind(r, c)} | {c.limit} | "
            f"{fmt.reached_at(c)}{ext} | {c.basis} |"
        )
    if r.outcomes:
        lines += [
            "",
            "### Outcomes per route (whole load period)",
            "",
            "| route | requests | failed | expected outcomes | payment pending | codes |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for o in r.outcomes:
            codes = ", ".join(f"{k} {v}" for k, v in sorted(o.outcomes.items())) or "—"
            lines.append(
                f"| {o.route} | {o.requests:,} | {o.errors:,} | {o.expected:,} | "
                f"{o.payment_pending:,} | {codes} |"
            )
    failed = [c for c in r.checks if c.ok is False]
    if failed or r.warnings:
        lines += ["", "### Warnings", ""] + [f"- {w}" for w in r.warnings]
    return "\n".join(lines) + "\n"


def _q(q, with_ci: bool = True) -> str:
    if not q.ok:
        return "insufficient data"
    if with_ci and not q.has_interval:
        return f"{fmt.ms(q.value_ms)} (no interval: window too short for its memory)"
    return (
        f"{fmt.ms(q.value_ms)} {fmt.ci_ms((q.ci_low_ms, q.ci_high_ms))}"
        if with_ci
        else fmt.ms(q.value_ms)
    )


def render_comparison(c: Comparison) -> str:
    lines = [
        f"## loadgate compare `{c.run_id}` vs baseline `{c.baseline_id}`: **{c.verdict}**",
        "",
        f"Errors: two-proportion z-test; latency of successful requests: Mann–Whitney U with "
        f"the Hodges–Lehmann shift, and P95/P99 with 95% intervals; tolerance "
        f"±{c.tolerance:.0%}, Bonferroni-adjusted α={c.alpha}; loads compared: "
        f"{', '.join(f'{x:,.0f}' for x in c.loads) or 'all steady state'} "
        "(steady-state windows only). All values measured.",
        "",
        "| endpoint | n (run / base) | errors base → run | median run | median base | "
        "HL shift | relative | p | P95 base → run | P99 base → run | verdict |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for e in [c.overall, *c.endpoints]:
        rel = fmt.pct(e.relative_shift, 1) if e.relative_shift is not None else "—"
        p = f"{e.p_value:.2g}" if e.p_value is not None else "—"
        tails = {t.p: fmt.tail_cell(t) for t in e.tails or []}
        lines.append(
            f"| {e.endpoint} | {e.n_current:,} / {e.n_baseline:,} | {fmt.errors_cell(e.errors)} | "
            f"{fmt.ms(e.median_current_ms)} | {fmt.ms(e.median_baseline_ms)} | "
            f"{fmt.ms(e.hl_shift_ms)} | {rel} | {p} | {tails.get(0.95, '—')} | "
            f"{tails.get(0.99, '—')} | {e.verdict} |"
        )
    return "\n".join(lines) + "\n"


def write(r: AnalysisResult, path: Path) -> Path:
    path.write_text(render(r))
    return path
