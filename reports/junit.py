"""JUnit XML: one test case per gate criterion, so CI dashboards show each criterion.

measured pass -> passed; measured fail -> <failure>; projected or insufficient data ->
<skipped> with the reason (a projection is not a test result).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from analysis.analyze import AnalysisResult
from analysis.compare import Comparison
from analysis.gates import FAIL, PASS
from reports import fmt


def render(r: AnalysisResult, comparison: Comparison | None = None) -> str:
    suite = ET.Element("testsuite", name=f"loadgate.phase{r.phase}.gate")
    cases = 0
    failures = skipped = 0
    for c in r.gate.criteria:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"loadgate.phase{r.phase}",
            name=f"{c.name}: {c.description}",
        )
        cases += 1
        msg = (
            f"{c.status} ({c.basis}): {fmt.criterion_value(c.name, c.value, c.ci)} at "
            f"{fmt.num(c.load)} users; {c.detail}"
        )
        if c.status == FAIL:
            failures += 1
            ET.SubElement(case, "failure", message=msg).text = msg
        elif c.status != PASS:
            skipped += 1
            ET.SubElement(case, "skipped", message=msg)
        else:
            ET.SubElement(case, "system-out").text = msg
    if r.verdict == "INVALID":  # the numbers above describe the harness: a failure
        case = ET.SubElement(
            suite, "testcase", classname=f"loadgate.phase{r.phase}", name="validity"
        )
        cases += 1
        failures += 1
        msg = "; ".join(r.gate.notes())
        ET.SubElement(case, "failure", message=msg).text = msg
    if comparison is not None:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="loadgate.compare",
            name=f"no regression vs {comparison.baseline_id}",
        )
        cases += 1
        if comparison.verdict == "regression":
            failures += 1
            bad = [
                e.endpoint
                for e in [comparison.overall, *comparison.endpoints]
                if e.verdict == "regression"
            ]
            ET.SubElement(case, "failure", message=f"regression: {', '.join(bad)}")
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def write(r: AnalysisResult, path: Path, comparison: Comparison | None = None) -> Path:
    path.write_text(render(r, comparison))
    return path
