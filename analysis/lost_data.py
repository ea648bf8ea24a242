"""Data a run lost, placed in time: unreadable events files (the span their writer's
neighbouring files leave) and request records the record channel lost (at the time the
master last heard of their worker).  Read by the window-coverage check
(``analysis.validity``) and named beside the verdict (``analysis.gates``).
"""

from __future__ import annotations

from analysis.runs import Run


def channel_workers(run: Run) -> dict[str, dict]:
    """The record channel's account of each shipping worker (manifest ``record_channel``)."""
    return (run.manifest.get("record_channel") or {}).get("workers") or {}


def channel_lost_in_window(run: Run, start_us: int, end_us: int) -> int:
    """Request records shipping workers lost while last heard of in [start, end).

    A worker loses its records at the end of its life (the unacknowledged batch of a
    killed worker), so its loss is placed at the time the master last heard from it.
    """
    lost = 0
    for account in channel_workers(run).values():
        seen = int(account.get("last_seen_us") or 0)
        if start_us <= seen < end_us:
            lost += int(account.get("streams", {}).get("events", {}).get("lost", 0))
    return lost


def lost_in_window(run: Run, start_us: int, end_us: int) -> list[tuple[str, tuple[int, int]]]:
    """Unreadable events files that may cover part of [start_us, end_us), with that part."""
    out = []
    for f in run.lost_events:
        span = f.span(start_us, end_us)
        if span is not None:
            out.append((f.name, span))
    return out


def lost_text(lost: list[tuple[str, tuple[int, int]]], origin_us: int) -> str:
    """e.g. ``1 unreadable events file (w0-000012.parquet) covering 225–315 s``: seconds
    from the load start, as every report's time axis."""
    names = ", ".join(n for n, _ in lost)
    spans = ", ".join(
        f"{(a - origin_us) / 1e6:.0f}–{(b - origin_us) / 1e6:.0f} s" for _, (a, b) in lost
    )
    s = "s" if len(lost) > 1 else ""
    return f"{len(lost)} unreadable events file{s} ({names}) covering {spans} of the load"
