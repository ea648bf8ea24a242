"""Number formatting shared by the HTML and Markdown reports."""

from __future__ import annotations

import math

from analysis.usl import BEYOND, USLFit
from runformat.criteria import CRITERIA


def ms(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:,.0f} ms" if v >= 100 else f"{v:,.1f} ms"


def ci_ms(ci: tuple[float | None, float | None] | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f"[{ci[0]:,.0f}–{ci[1]:,.0f}]" if ci[1] >= 100 else f"[{ci[0]:,.1f}–{ci[1]:,.1f}]"


def pct(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}%}"


def ci_pct(ci: tuple[float, float] | None, digits: int = 2) -> str:
    return "" if not ci else f"[{ci[0]:.{digits}%}–{ci[1]:.{digits}%}]"


def num(v: float | None, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and (math.isnan(v))):
        return "—"
    if isinstance(v, float) and math.isinf(v):
        return BEYOND  # only loads reach here as inf: an interval end beyond 3x measured
    return f"{v:,.{digits}f}"


def ci_num(ci: tuple[float, float] | None, digits: int = 0) -> str:
    return "" if not ci else f"[{num(ci[0], digits)}–{num(ci[1], digits)}]"


def criterion_value(name: str, value: float | None, ci) -> str:
    """A gate criterion's value in its natural unit."""
    if value is None:
        return "—"
    unit = CRITERIA[name].unit if name in CRITERIA else None  # the one registry
    if unit == "ms":
        return f"{ms(value)} {ci_ms(ci)}".strip()
    if unit == "ratio":
        return f"{pct(value)} {ci_pct(ci)}".strip()
    if unit == "s":
        return f"{num(value)} s {ci_num(ci)}".strip()
    return f"{num(value)} {ci_num(ci)}".strip()


#: A fitted coefficient this small is a zero of the optimiser (bounded at 0, it stops a
#: few ulps above): printed as 0, never as ``3.906e-22``.
ZERO_COEFFICIENT = 1e-12


def coef(v: float, digits: int = 4) -> str:
    """A model coefficient to ``digits`` significant digits; a numerical zero as 0."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return "0" if abs(v) < ZERO_COEFFICIENT else f"{v:.{digits}g}"


def coef_ci(ci: tuple[float, float] | None, digits: int = 4) -> str:
    return "" if not ci else f"[{coef(ci[0], digits)}–{coef(ci[1], digits)}]"


def usl_summary(fit: USLFit) -> str:
    """The USL fit in one line, or why it was refused; N* only when identifiable."""
    if not fit.ok:
        return f"USL fit refused: {fit.refused}"
    text = (
        f"σ = {coef(fit.sigma)} {coef_ci(fit.sigma_ci)}, κ = {coef(fit.kappa, 3)} "
        f"{coef_ci(fit.kappa_ci, 3)}, λ = {fit.lam:.4g} req/s per user, "
        f"R² = {fit.r2:.3f}; "
    )
    if fit.n_star is None:
        return text + f"peak concurrency N*: {fit.peak_note}"
    where = "projected" if fit.n_star_extrapolated else "within the measured range"
    return text + (
        f"peak concurrency N* = {num(fit.n_star)} {ci_num(fit.n_star_ci)} users ({where}), "
        f"X_max = {num(fit.x_max, 1)} req/s {ci_num(fit.x_max_ci, 1)}"
    )


def reached_at(c) -> str:
    """Where a headroom constraint is reached, as text (never a number beyond 3x)."""
    if c.load is not None:
        return f"{num(c.load)} {ci_num(c.ci)}".strip()
    if c.basis == BEYOND:
        return f"> {num(c.lower_bound)} ({BEYOND})"
    if c.lower_bound is not None:
        return f"> {num(c.lower_bound)}"
    return "—"


def errors_cell(e) -> str:
    """An ErrorComparison as "0.10% → 30.2% (+30.1 pp [29.5–30.8])"."""
    if e is None or e.rate_current is None:
        return "—"
    lo, hi = e.diff_ci
    return (
        f"{pct(e.rate_baseline)} → {pct(e.rate_current)} "
        f"({e.diff * 100:+.2f} pp [{lo * 100:+.2f}–{hi * 100:+.2f}])"
    )


def tail_cell(t) -> str:
    """A TailComparison as "base 410 ms [400–420] → run 520 ms [505–540] (+27%)"."""
    if t.current_ms is None or t.baseline_ms is None or t.relative is None:
        return "insufficient data"
    return (
        f"{ms(t.baseline_ms)} {ci_ms(t.baseline_ci)} → {ms(t.current_ms)} "
        f"{ci_ms(t.current_ci)} ({t.relative:+.1%})"
    )


def window(start_us: float, end_us: float) -> str:
    """A window as seconds since the load started, e.g. "t = 135–180 s"."""
    return f"t = {start_us / 1e6:,.0f}–{end_us / 1e6:,.0f} s"


def hull(point: float | None, ci: tuple[float, float] | None) -> tuple[float, float] | None:
    """An interval widened to contain its point: a point outside its own interval is never
    printed (batch-means intervals of a rate need not contain the whole-window rate)."""
    if ci is None or point is None:
        return ci
    return (min(ci[0], point), max(ci[1], point))


def constraint_kind(r, c) -> str:
    """A headroom row's class (hardware / architecture / objective), "—" when unknown."""
    binding = getattr(r, "binding", None)
    return binding.kinds.get(c.name, "—") if binding is not None else "—"


def placement_lines(manifest: dict) -> list[str]:
    """Where the run ran and how long its gate step was held: the report's first lines.

    "System under test on N cores, generator on M" from the manifest's ``isolation``
    (absent in runs before it existed, and with ``--target``), and the extended gate hold
    with its reason from ``gate_hold`` when the hold was extended."""
    lines = []
    iso = manifest.get("isolation") or {}
    if iso:
        stack, gen = iso.get("stack_cpus") or [], iso.get("generator_cpus") or []
        mechanism = iso.get("mechanism", "none")
        if mechanism == "none":
            how = "shared, no isolation" + (f": {iso['note']}" if iso.get("note") else "")
            lines.append(f"System under test and generator on the same {len(stack)} cores ({how})")
        elif mechanism == "weights":  # the stack also gets what the generator leaves idle
            note = f"; {iso['note']}" if iso.get("note") else ""
            cores = len(set(stack) | set(gen))
            lines.append(
                f"System under test on {len(stack)} cores (up to {cores} when the generator "
                f"idles), generator on {len(gen)} first (isolation: cgroup weights{note})"
            )
        else:
            note = f"; {iso['note']}" if iso.get("note") else ""
            lines.append(
                f"System under test on {len(stack)} cores, generator on {len(gen)} "
                f"(isolation: {mechanism}, CPUs {_cpus(stack)} | {_cpus(gen)}{note})"
            )
    hold = manifest.get("gate_hold") or {}
    if hold.get("extended_s"):
        lines.append(
            f"Gate step held {hold['extended_s']:.0f} s past its plan (cap {hold['cap_s']:.0f} s, "
            f"{hold.get('outcome')}): {hold.get('reason') or 'undecided'}"
        )
    return lines


def _cpus(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus) or "-"
