"""Self-contained HTML report for leadership.

Verdict first, then the gate table, charts, per-endpoint table, steps and validity.
Charts are PNGs embedded as base64 data URIs; CSS is inline; there is no script and no
external reference, so the file opens offline and makes no network request.
Every number carries a measured / projected tag.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from analysis.analyze import AnalysisResult
from analysis.compare import Comparison
from reports import charts, fmt
from reports.images import img

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1c2430}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde}
.verdict{padding:18px 22px;border-radius:8px;color:#fff;margin:12px 0}
.v-PASS{background:#1b7f3b}.v-FAIL,.v-PROJECTED-FAIL{background:#b3261e}
.v-PROJECTED-PASS,.v-INSUFFICIENT-DATA,.v-NO-GATE{background:#8a6d00}
.v-PROJECTED,.v-INCONCLUSIVE{background:#8a6d00}.v-INVALID{background:#5f2a86}
.verdict .big{font-size:28px;font-weight:700}.verdict p{margin:6px 0 0;font-size:15px}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:13px}
th,td{border-bottom:1px solid #e3e6ea;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f4f6f8} td.n{text-align:right;font-variant-numeric:tabular-nums}
.tag{font-size:11px;border-radius:3px;padding:1px 5px;white-space:nowrap}
.measured{background:#e3f1e6;color:#1b5e2b}.projected{background:#f3e8fb;color:#5b2a86}
.none{background:#eee;color:#555}
.s-pass{color:#1b7f3b;font-weight:600}.s-fail{color:#b3261e;font-weight:600}
.s-projected{color:#5b2a86;font-weight:600}.s-insufficient{color:#8a6d00;font-weight:600}
img{max-width:100%;display:block;margin:6px 0 14px}
.meta{color:#5a6472;font-size:12px}.warn{color:#8a6d00}
"""


def tag(basis: str) -> str:
    """The measured / projected label every number carries (anything else: grey)."""
    cls = basis if basis in ("measured", "projected") else "none"
    return f'<span class="tag {cls}">{escape(basis)}</span>'


def _status(status: str) -> str:
    cls = (
        "s-pass"
        if status == "pass"
        else "s-fail"
        if status == "fail"
        else "s-projected"
        if status.startswith("projected")
        else "s-insufficient"
    )
    return f'<span class="{cls}">{escape(status)}</span>'


def _q(q) -> str:
    if not q.ok:
        return f'<span class="warn">{escape(q.reason or "insufficient data")}</span>'
    if not q.has_interval:
        return f'{fmt.ms(q.value_ms)} <span class="warn">{escape(q.reason or "no interval")}</span>'
    return f"{fmt.ms(q.value_ms)} <span class=meta>{fmt.ci_ms((q.ci_low_ms, q.ci_high_ms))}</span>"


def _gate_table(r: AnalysisResult) -> str:
    if not r.gate.criteria:
        return "<p>No gate criteria in this phase's config (baseline run).</p>"
    where = (
        f"applied in step <b>{escape(r.gate.step)}</b> — criteria are measured"
        if r.gate.step
        else "<b>not applied</b> in this run — criteria can only be "
        "projected, and a projection never passes a gate"
    )
    rows = "".join(
        f"<tr><td>{escape(c.description)}</td><td class=n>"
        f"{escape(fmt.criterion_value(c.name, c.value, c.ci))}</td><td>{tag(c.basis)}</td>"
        f"<td>{_status(c.status)}</td><td class=meta>{escape(c.detail)}</td></tr>"
        for c in r.gate.criteria
    )
    return (
        f"<p>Gate load {fmt.num(r.gate.gate_load)} {r.gate.load_unit}: {where}.</p><table><tr>"
        "<th>criterion</th><th>value [95% CI]</th><th>basis</th><th>status</th>"
        f"<th>detail</th></tr>{rows}</table>"
    )


def _route_rows(endpoints) -> str:
    return "".join(
        f"<tr><td>{escape(e.endpoint)}</td><td class=n>{e.n:,}</td>"
        f"<td class=n>{e.throughput_rps:,.1f}</td><td class=n>{_q(e.latency.p(0.5))}</td>"
        f"<td class=n>{_q(e.latency.p(0.95))}</td><td class=n>{_q(e.latency.p(0.99))}</td>"
        f"<td class=n>{fmt.ms(e.latency.max_ms)}</td><td class=n>{fmt.pct(e.error_rate)}</td></tr>"
        for e in sorted(endpoints, key=lambda e: -e.n)
    )


ROUTE_HEAD = (
    "<table><tr><th>endpoint</th><th>requests</th><th>req/s</th><th>P50</th>"
    "<th>P95 [CI]</th><th>P99 [CI]</th><th>max</th><th>errors</th></tr>"
)


def _endpoint_table(r: AnalysisResult) -> str:
    """Per route at the gate step (or the highest step), then over the whole run; each
    table says which windows it covers (steady state only: ramps hold spawning stalls)."""
    steps = [st for st in r.steps if st.n]
    if not steps:
        return "<p>No steady-state records.</p>"
    st = next((s for s in steps if s.step.name == r.gate.step), max(steps, key=lambda s: s.load))
    window = fmt.window(st.step.start_us - r.start_us, st.step.end_us - r.start_us)
    out = (
        f"<p>Step <b>{escape(st.step.name)}</b> at {st.load:,.0f} users, steady-state window "
        f"{window} (warm-up excluded) {tag('measured')}</p>"
        f"{ROUTE_HEAD}{_route_rows(st.endpoints)}</table>"
    )
    if r.routes is not None and r.routes.endpoints:
        out += (
            f"<p>Whole run: {escape(r.routes.description)} {tag('measured')}</p>"
            f"{ROUTE_HEAD}{_route_rows(r.routes.endpoints)}</table>"
        )
    return out


def _steps_table(r: AnalysisResult) -> str:
    rows = []
    for st in r.steps:
        cor = st.corrected_latency.p(0.99) if st.corrected_latency else None
        rows.append(
            f"<tr><td>{escape(st.step.name)}</td>"
            f"<td class=n>{fmt.window(st.step.start_us - r.start_us, st.step.end_us - r.start_us)}"
            f"</td><td class=n>{st.load:,.0f}</td>"
            f"<td class=n>{st.users_observed:,.0f}</td><td class=n>{st.n:,}</td>"
            f"<td class=n>{st.throughput_rps:,.1f} <span class=meta>"
            f"{fmt.ci_num(fmt.hull(st.throughput_rps, st.throughput_ci), 1)}</span></td>"
            f"<td class=n>{_q(st.latency.p(0.5))}</td><td class=n>{_q(st.latency.p(0.95))}</td>"
            f"<td class=n>{_q(st.latency.p(0.99))}</td>"
            f"<td class=n>{_q(cor) if cor else '—'}</td>"
            f"<td class=n>{fmt.pct(st.error_rate)} <span class=meta>"
            f"{fmt.ci_pct(fmt.hull(st.error_rate, st.error_rate_ci))}</span></td></tr>"
        )
    return (
        "<table><tr><th>step</th><th>steady-state window</th><th>load</th><th>users seen</th>"
        "<th>requests</th>"
        "<th>req/s [CI]</th><th>P50</th><th>P95 [CI]</th><th>P99 [CI]</th>"
        "<th>P99 corrected for coordinated omission</th><th>errors [CI]</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _usl_block(r: AnalysisResult) -> str:
    fit = r.usl
    knee = (
        f"Knee of P95 vs load at <b>{fmt.num(r.knee.load)}</b> users "
        f"(P95 {fmt.ms(r.knee.p95_ms)}) {tag('measured')}"
        if r.knee.load is not None
        else f"Knee of P95 vs load: {escape(r.knee.reason or '')}"
    )
    label = tag("projected") if fit.ok else ""
    return f"<p>{knee}.</p><p>{label} {escape(fmt.usl_summary(fit))}.</p>"


def _headroom_table(r: AnalysisResult) -> str:
    rows = []
    for c in r.headroom.constraints:
        where = escape(fmt.reached_at(c))
        b = " <b>(binding)</b>" if r.headroom.binding is c else ""
        ext = ' <span class="warn">above the measured load</span>' if c.extrapolated else ""
        basis = c.basis if c.basis in ("measured", "projected") else "none"
        rows.append(
            f"<tr><td>{escape(c.name)}{b}</td><td>{escape(fmt.constraint_kind(r, c))}</td>"
            f"<td>{escape(c.limit)}</td>"
            f"<td class=n>{where}{ext}</td><td>{tag(basis)} "
            f"{'' if basis != 'none' else escape(c.basis)}</td>"
            f"<td class=meta>{escape(c.detail)}</td></tr>"
        )
    return (
        "<table><tr><th>constraint</th><th>kind</th><th>limit</th>"
        "<th>reached at (users) [95% CI]</th>"
        "<th>basis</th><th>detail</th></tr>" + "".join(rows) + "</table>"
    )


def _checks(r: AnalysisResult) -> str:
    rows = "".join(
        f"<tr><td>{escape(c.name)}</td><td>{escape(c.step or '')}</td>"
        f"<td>{'ok' if c.ok else 'FAILED' if c.ok is False else 'n/a'}</td>"
        f"<td class=meta>{escape(c.detail)}</td></tr>"
        for c in r.checks
    )
    return (
        f"<table><tr><th>check</th><th>step</th><th>result</th><th>detail</th></tr>{rows}</table>"
    )


def render(r: AnalysisResult) -> str:
    imgs = charts.all_charts(r)
    v = r.verdict.replace(" ", "-")
    warn = "".join(f"<li>{escape(w)}</li>" for w in r.warnings)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>loadgate phase {r.phase} gate — {escape(r.verdict)}</title><style>{CSS}</style></head>
<body><main>
<h1>Blue Harvests — phase {r.phase} gate report</h1>
<div class="meta">run {escape(r.run_id)} · profile {escape(str(r.profile))} · {r.model} model ·
{escape(str(r.manifest.get("started_at")))} → {escape(str(r.manifest.get("ended_at") or "—"))} ·
{r.n_records:,} requests · git {escape(str(r.manifest.get("git_sha", "")))}</div>
{"".join(f'<div class="meta">{escape(line)}</div>' for line in fmt.placement_lines(r.manifest))}
<div class="verdict v-{escape(v)}"><div class="big">{escape(r.verdict)}</div>
{"".join(f"<p>{escape(n)}</p>" for n in r.gate.notes())}
<p>{escape(r.headroom.sentence)}</p></div>
<h2>Gate criteria</h2>{_gate_table(r)}
<h2>Latency over time {tag("measured")}</h2>
{img(imgs["latency_over_time"], "latency percentiles over time")}
<h2>Throughput and scalability</h2>{_usl_block(r)}
{img(imgs["throughput_vs_users"], "throughput vs users with USL curve")}
<h2>Errors {tag("measured")}</h2>{img(imgs["errors_by_class"], "error rate by class")}
<h2>Resources {tag("measured")}</h2>{img(imgs["resources"], "resource use per service")}
<h2>Headroom</h2>{_headroom_table(r)}{img(imgs["headroom"], "headroom per constraint")}
<h2>Per route</h2>{_endpoint_table(r)}
<h2>Load steps (steady state) {tag("measured")}</h2>{_steps_table(r)}
<h2>Validity checks</h2>{_checks(r)}
{f'<h2>Warnings</h2><ul class="warn">{warn}</ul>' if warn else ""}
<p class="meta">Percentiles come from raw per-request records (µs); intervals are 95%
distribution-free order-statistic intervals. <i>measured</i> = the load was applied and held;
<i>projected</i> = from the USL or trend model, never counted as a pass.</p>
</main></body></html>
"""


def render_comparison(c: Comparison) -> str:
    rows = "".join(
        f"<tr><td>{escape(e.endpoint)}</td><td class=n>{e.n_current:,} / {e.n_baseline:,}</td>"
        f"<td class=n>{escape(fmt.errors_cell(e.errors))}</td>"
        f"<td class=n>{fmt.ms(e.median_current_ms)}</td><td class=n>{fmt.ms(e.median_baseline_ms)}"
        f"</td><td class=n>{fmt.ms(e.hl_shift_ms)}</td><td class=n>"
        f"{fmt.pct(e.relative_shift, 1) if e.relative_shift is not None else '—'}</td>"
        f"<td class=n>{'—' if e.p_value is None else f'{e.p_value:.2g}'}</td>"
        + "".join(f"<td class=n>{escape(fmt.tail_cell(t))}</td>" for t in e.tails or [])
        + ("<td>—</td><td>—</td>" if not e.tails else "")
        + f"<td>{escape(e.verdict)}</td></tr>"
        for e in [c.overall, *c.endpoints]
    )
    v = {"regression": "FAIL", "improvement": "PASS", "no change": "PASS"}.get(c.verdict, "NO-GATE")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>loadgate compare — {escape(c.verdict)}</title>
<style>{CSS}</style></head><body><main>
<h1>{escape(c.run_id)} vs baseline {escape(c.baseline_id)}</h1>
<div class="verdict v-{v}"><div class="big">{escape(c.verdict)}</div>
<p>Errors: two-proportion z-test. Latency of successful requests: Mann–Whitney U,
Hodges–Lehmann shift, P95/P99 with 95% intervals. Tolerance ±{c.tolerance:.0%}, α = {c.alpha}
(Bonferroni-adjusted); steady-state windows only. All values {tag("measured")}.</p></div>
<table><tr><th>endpoint</th><th>n (run / base)</th><th>errors base → run</th>
<th>median run</th><th>median base</th><th>HL shift</th><th>relative</th><th>p</th>
<th>P95 base → run</th><th>P99 base → run</th><th>verdict</th></tr>{rows}</table>
</main></body></html>
"""


def write(r: AnalysisResult, path: Path) -> Path:
    path.write_text(render(r), encoding="utf-8")
    return path
