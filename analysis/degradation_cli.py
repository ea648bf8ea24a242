"""``python -m analysis.degradation_cli RUN [RUN ...]``: per-fault degradation, side by side.

The same fault scenario run under two profiles (e.g. phase0 and phase3,
docs/faults.md) gives one Markdown table: detection, catalogue/cart errors and P95, the
checkouts' outcome mix, order failures and recovery of every fault of every run, measured
(``analysis.degradation``).
"""

from __future__ import annotations

import sys

from analysis.degradation import table
from analysis.runs import load_run
from runformat.manifest import RunFormatError


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("error: give one or more run directories", file=sys.stderr)
        return 2
    try:
        runs = [load_run(p) for p in paths]
    except RunFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(runs), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
