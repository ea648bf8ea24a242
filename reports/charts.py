"""Charts (matplotlib, Agg backend) rendered to PNG bytes for embedding in the HTML.

Time charts shade fault windows (faults.jsonl) in red, steady-state steps in grey, and mark
incidents (incidents.jsonl: a service that stopped answering) with a dashed line and hatching,
purple when unplanned, over the time the service did not answer.
Anything drawn from a model (USL curve beyond measured load, projected headroom) is dashed
or hatched and labelled "projected".
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis import usl as usl_mod  # noqa: E402
from analysis.analyze import AnalysisResult  # noqa: E402
from analysis.crossings import CPU_PLANNING_LINE  # noqa: E402
from reports import fmt  # noqa: E402
from runformat.metrics import CPU_PERCENT, RSS_BYTES  # noqa: E402

DPI = 96
SIZE = (9.5, 3.6)


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _start_us(r: AnalysisResult) -> int:
    return r.start_us


def _shade(ax, r: AnalysisResult) -> None:
    start = _start_us(r)
    for st in r.steps:
        ax.axvspan(
            (st.step.start_us - start) / 1e6, (st.step.end_us - start) / 1e6, color="0.93", zorder=0
        )
    last_s = _last_s(r)
    for i, f in enumerate(r.faults):
        try:
            a = (f["start_us"] - start) / 1e6
            b = last_s if f.get("end_us") is None else (f["end_us"] - start) / 1e6
        except (KeyError, TypeError):
            continue
        ax.axvspan(
            a, b, color="tab:red", alpha=0.15, zorder=0, label="fault window" if i == 0 else None
        )
        ax.text(
            a,
            1.0,
            f" {f.get('kind', 'fault')} {f.get('target', '')}",
            fontsize=7,
            va="top",
            transform=ax.get_xaxis_transform(),
            color="tab:red",
        )
    _mark_incidents(ax, r, start, last_s)


def _last_s(r: AnalysisResult) -> float:
    """The chart's right edge: the last time bucket (a fault or incident left open ends there)."""
    df = r.timeseries.frame
    return float(df["t_s"].max()) if not df.empty else 0.0


def _mark_incidents(ax, r: AnalysisResult, start: int, last_s: float) -> None:
    for i, inc in enumerate(r.incidents):
        try:
            a = (inc["start_us"] - start) / 1e6
            b = last_s if inc.get("end_us") is None else (inc["end_us"] - start) / 1e6
        except (KeyError, TypeError):
            continue
        color = "tab:red" if inc.get("planned") else "tab:purple"
        kind = "planned" if inc.get("planned") else "unplanned"
        ax.axvline(a, color=color, ls="--", lw=1)
        ax.axvspan(a, max(b, a), facecolor="none", edgecolor=color, hatch="//", lw=0, zorder=0,
                   label=f"{kind} incident" if i == 0 else None)  # fmt: skip
        ax.text(a, 0.9, f" {inc.get('service', '?')} down", fontsize=7, va="top",
                transform=ax.get_xaxis_transform(), color=color)  # fmt: skip


def latency_over_time(r: AnalysisResult) -> bytes:
    df = r.timeseries.frame
    fig, ax = plt.subplots(figsize=SIZE)
    _shade(ax, r)
    for col, style in (("p50_ms", "-"), ("p95_ms", "-"), ("p99_ms", ":")):
        ax.plot(df["t_s"], df[col], style, label=col.replace("_ms", "").upper(), lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("latency (ms, log)")
    ax2 = ax.twinx()
    ax2.plot(df["t_s"], df["users"], color="0.4", lw=1, drawstyle="steps-post", label="users")
    ax2.set_ylabel("active users")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8)
    ax.set_title(
        f"Latency percentiles over time (measured; {r.timeseries.bucket_s:g} s buckets, "
        "grey = steady-state steps)",
        fontsize=10,
    )
    return png_bytes(fig)


def throughput_vs_users(r: AnalysisResult) -> bytes:
    fig, ax = plt.subplots(figsize=SIZE)
    from analysis.saturation import concurrency_and_throughput

    n, x = concurrency_and_throughput(r.steps, r.model)
    # An interval that does not contain its point (e.g. batch means vs the whole-window
    # rate) must not crash the report: matplotlib rejects negative error bar lengths.
    lo = [max(st.throughput_rps - st.throughput_ci[0], 0.0) for st in r.steps if st.n]
    hi = [max(st.throughput_ci[1] - st.throughput_rps, 0.0) for st in r.steps if st.n]
    ax.errorbar(n, x, yerr=[lo, hi], fmt="o", color="tab:blue", label="measured (95% CI)")
    fit = r.usl
    if fit.ok and n.size:
        top = float(n.max())
        right = top * 2
        if fit.n_star is not None:
            right = max(right, min(fit.n_star * 1.3, top * usl_mod.EXTRAPOLATION_LIMIT))
        grid = np.linspace(1, right, 300)
        y = usl_mod.usl_model(grid, fit.sigma, fit.kappa, fit.lam)
        m = grid <= top
        sigma, kappa = fmt.coef(fit.sigma, 3), fmt.coef(fit.kappa, 2)  # a numerical 0 as 0
        ax.plot(
            grid[m],
            y[m],
            "-",
            color="tab:orange",
            label=f"USL fit (σ={sigma}, κ={kappa}, R²={fit.r2:.3f})",
        )
        ax.plot(grid[~m], y[~m], "--", color="tab:orange", label="USL projected")
        if fit.n_star is not None and fit.n_star <= right:
            ax.axvline(
                fit.n_star,
                color="tab:red",
                ls=":",
                label=f"N* = {fit.n_star:,.0f} (projected)"
                if fit.n_star > top
                else f"N* = {fit.n_star:,.0f}",
            )
    else:
        ax.text(
            0.5,
            0.9,
            f"USL not fitted: {fit.refused}",
            transform=ax.transAxes,
            ha="center",
            fontsize=8,
            wrap=True,
        )
    gate = r.gate.gate_load
    if gate:
        ax.axvline(gate, color="0.3", ls="--", lw=0.8, label=f"gate load {gate:,.0f}")
    ax.set_xlabel("concurrency (users)" if r.model == "closed" else "concurrency (X·R)")
    ax.set_ylabel("throughput (req/s)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Throughput vs concurrency with the Universal Scalability Law", fontsize=10)
    return png_bytes(fig)


def errors_by_class(r: AnalysisResult) -> bytes:
    fig, ax = plt.subplots(figsize=SIZE)
    steps = [st for st in r.steps if st.n]
    labels = [f"{st.load:,.0f}" for st in steps]
    bottom = np.zeros(len(steps))
    classes = sorted({c for st in steps for c, v in st.errors_by_class.items() if v})
    for c in classes:
        vals = np.array([st.errors_by_class.get(c, 0) / st.n for st in steps]) * 100
        ax.bar(labels, vals, bottom=bottom, label=c)
        bottom += vals
    gate = r.manifest.get("config", {}).get("gate", {}) or {}
    budget = (gate.get("criteria", {}) or {}).get("error_rate", gate.get("error_rate"))
    if budget is not None:
        ax.axhline(
            float(budget) * 100,
            color="tab:red",
            ls="--",
            lw=1,
            label=f"error budget {float(budget):.1%}",
        )
    if not classes:
        ax.text(0.5, 0.5, "no errors", transform=ax.transAxes, ha="center")
    ax.set_xlabel("load step (users)")
    ax.set_ylabel("error rate (%)")
    ax.legend(fontsize=8)
    ax.set_title("Error rate by class per step (measured)", fontsize=10)
    return png_bytes(fig)


def resources(r: AnalysisResult) -> bytes:
    df = r.resources
    fig, axes = plt.subplots(1, 2, figsize=(SIZE[0], SIZE[1]))
    # cpu_percent follows psutil (100 = one core); the planning line is of the whole host.
    cores = float((r.manifest.get("host") or {}).get("cpus") or 1)
    for ax, metric, scale, unit in (
        (axes[0], CPU_PERCENT, 1.0 / cores, "CPU (% of host cores)"),
        (axes[1], RSS_BYTES, 2**-20, "RSS (MiB)"),
    ):
        _shade(ax, r)
        sub = df[df["metric"] == metric] if not df.empty else df
        for source, g in sub.groupby("source") if not sub.empty else []:
            ax.plot(g["t_s"], g["value"] * scale, lw=1, label=str(source))
        if metric == CPU_PERCENT:
            ax.axhline(
                CPU_PLANNING_LINE,
                color="tab:red",
                ls="--",
                lw=0.8,
                label=f"{CPU_PLANNING_LINE:.0f}% planning line",
            )
        ax.set_xlabel("time since start (s)")
        ax.set_ylabel(unit)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Resource use per service (measured)", fontsize=10)
    return png_bytes(fig)


def headroom(r: AnalysisResult) -> bytes:
    cons = r.headroom.constraints
    fig, ax = plt.subplots(figsize=(SIZE[0], 0.45 * max(len(cons), 3) + 1.2))
    top = max((st.load for st in r.steps), default=1.0)
    for i, c in enumerate(cons):
        if c.load is not None:
            hatch = "//" if c.basis == "projected" else None
            color = "tab:red" if r.headroom.binding is c else "tab:blue"
            ax.barh(i, c.load, color=color, alpha=0.6 if hatch else 0.9, hatch=hatch)
            if c.ci:
                ax.errorbar(
                    c.load,
                    i,
                    xerr=[
                        [max(c.load - c.ci[0], 0)],
                        [max(min(c.ci[1], usl_mod.EXTRAPOLATION_LIMIT * top) - c.load, 0)],
                    ],
                    fmt="none",
                    color="k",
                    capsize=3,
                )
            ax.text(c.load, i, f" {c.load:,.0f} ({c.basis})", va="center", fontsize=7)
        elif c.lower_bound is not None:
            ax.barh(i, c.lower_bound, color="0.8")
            what = "beyond the measured range" if c.basis == usl_mod.BEYOND else "not reached"
            ax.text(c.lower_bound, i, f" > {c.lower_bound:,.0f} ({what})", va="center", fontsize=7)
        else:
            ax.text(0, i, " not available", va="center", fontsize=7)
    ax.set_yticks(range(len(cons)), [f"{c.name}\n{c.limit}" for c in cons], fontsize=7)
    if r.headroom.target:
        ax.axvline(
            r.headroom.target,
            color="tab:green",
            ls="--",
            label=f"phase target {r.headroom.target:,.0f}",
        )
    ax.axvline(top, color="0.3", ls=":", label=f"max measured {top:,.0f}")
    ax.set_xscale("symlog", linthresh=max(top / 10, 1))
    ax.set_xlabel("load at which the constraint is reached (users)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Headroom per constraint (red = binding; hatched = projected)", fontsize=10)
    return png_bytes(fig)


CHARTS = {
    "latency_over_time": latency_over_time,
    "throughput_vs_users": throughput_vs_users,
    "errors_by_class": errors_by_class,
    "resources": resources,
    "headroom": headroom,
}


def all_charts(r: AnalysisResult) -> dict[str, bytes | str]:
    """Every chart as PNG bytes; a chart that cannot be drawn is the reason (a string).

    A chart is an illustration of numbers already in the tables: failing to draw one must
    not cost CI its verdict, so the failure is shown in its place and added to the run's
    warnings instead of ending the report step.
    """
    out: dict[str, bytes | str] = {}
    for name, draw in CHARTS.items():
        try:
            out[name] = draw(r)
        except Exception as exc:  # noqa: BLE001 - any drawing failure, reported in place
            plt.close("all")
            out[name] = f"chart not drawn: {type(exc).__name__}: {exc}"
            r.warnings.append(f"{name} {out[name]}")
    return out
