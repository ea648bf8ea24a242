"""``loadgate`` starts without the analysis stack: ``--help`` and a usage error answer in
under a second (they took ~4 s: pandas, scipy, statsmodels and matplotlib were imported
by every command, used by a few), and each CLI call in the test suite is that much
cheaper. Asserted by what is imported, not by a time."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "scipy", "statsmodels", "matplotlib", "analysis", "locust", "reports")


def test_the_cli_imports_no_analysis_stack_until_a_command_needs_it():
    code = (
        "import json, sys\n"
        "import loadgate.cli\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_the_lazy_package_names_still_resolve():
    """``runformat``'s names are imported on first use (PEP 562), each from its module."""
    import runformat
    from runformat import manifest, verdicts

    assert runformat.Verdict is verdicts.Verdict
    assert runformat.read_manifest is manifest.read_manifest
    assert runformat.rundir.__name__ == "runformat.rundir"  # a submodule as an attribute
    try:
        runformat.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("an unknown name must be an AttributeError")
