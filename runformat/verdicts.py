"""The verdict vocabulary, one table for every output (terminal, reports, JUnit, exit code).

See docs/DESIGN "Verdicts": a verdict the data cannot support is never PASS.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """A phase gate's verdict; ``exit_code`` is what ``loadgate run/report`` exit with."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    INVALID = "INVALID"
    PROJECTED = "PROJECTED"
    NO_GATE = "NO GATE"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self]

    @property
    def meaning(self) -> str:
        return MEANINGS[self]


#: verdict -> exit code (README "Reading a verdict").
EXIT_CODES: dict[Verdict, int] = {
    Verdict.PASS: 0,
    Verdict.FAIL: 1,
    Verdict.INCONCLUSIVE: 3,
    Verdict.INVALID: 3,
    Verdict.PROJECTED: 3,
    Verdict.NO_GATE: 0,
}
MEANINGS: dict[Verdict, str] = {
    Verdict.PASS: "every criterion measured at the gate load, each interval on the right side",
    Verdict.FAIL: "a criterion measured at the gate load, its interval on the wrong side",
    Verdict.INCONCLUSIVE: "an interval straddles its limit, or a value could not be measured",
    Verdict.INVALID: "a validity check failed: the numbers describe the harness, not the system",
    Verdict.PROJECTED: "the gate load was not applied; model-based values, never a pass",
    Verdict.NO_GATE: "the phase has no criteria; the run was valid",
}
#: Usage, config, stack or report failure (one ``error:`` line).
HARNESS_ERROR_EXIT = 2
