"""Number formatting shared by the HTML and Markdown reports."""

from __future__ import annotations

import math

from runformat.criteria import CRITERIA


def ms(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:,.0f} ms" if v >= 100 else f"{v:,.1f} ms"


def ci_ms(ci: tuple[float, float] | None) -> str:
    if not ci:
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
        return "∞"
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
    return f"{num(value)} {ci_num(ci)}".strip()
