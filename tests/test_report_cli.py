"""``loadgate report`` and ``loadgate compare`` on synthetic run directories:
the reports are written and the exit code is the verdict CI acts on."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loadgate.run_cli import finish
from reports import ReportError, compare_dirs, report_run, verdict_exit_code, write_comparison
from tests.cli_helpers import run_cli
from tests.synthetic import SyntheticSpec, write_run
from tests.test_cli_errors import assert_one_clear_error

# Few errors: a 18 s gate window of ~1,000 requests must show "< 1 %" with its interval.
SMALL = SyntheticSpec(
    levels=(10, 20, 40, 60, 80, 100), hold_s=20, ramp_s=5, warmup_s=2, error_mix={"5xx": 0.001}
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    passing = write_run(root / "pass", SMALL)
    failing = write_run(
        root / "fail",
        replace(SMALL, gate={"users": 100, "target_users": 80, "criteria": {"p95_ms": 1}}),
    )
    slower = write_run(root / "slower", replace(SMALL, latency_scale=1.25, seed=2))
    return {"pass": passing, "fail": failing, "slower": slower, "root": root}


def test_report_pass_exits_0_and_writes_every_report(runs, tmp_path):
    result = run_cli(["report", str(runs["pass"]), "--out", str(tmp_path / "r")], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
    for name in ("report.html", "summary.md", "report.json", "junit.xml"):
        assert (tmp_path / "r" / name).stat().st_size > 0


def test_report_failed_gate_exits_1(runs, tmp_path):
    result = run_cli(["report", str(runs["fail"]), "--out", str(tmp_path / "r")], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout


def test_compare_flags_a_regression(runs, tmp_path):
    result = run_cli(
        ["compare", str(runs["slower"]), str(runs["pass"]), "--out", str(tmp_path / "c")], tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "verdict: regression" in result.stdout
    assert (tmp_path / "c" / "comparison.md").exists()


def test_compare_same_run_is_no_change(runs, tmp_path):
    result = run_cli(
        ["compare", str(runs["pass"]), str(runs["pass"]), "--out", str(tmp_path / "c")], tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_report_of_a_non_run_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli(["report", str(tmp_path / "empty")], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error:")
    missing = run_cli(["report", str(tmp_path / "nope")], tmp_path)
    assert missing.returncode == 2 and "no such run directory" in missing.stderr


def _broken_copy(src: Path, dst: Path, edit) -> Path:
    """A copy of run ``src`` (data symlinked) whose manifest dict goes through ``edit``."""
    dst.mkdir(parents=True)
    for child in src.iterdir():
        if child.name != "manifest.json":
            (dst / child.name).symlink_to(child.resolve())
    manifest = json.loads((src / "manifest.json").read_text())
    edit(manifest)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


MANIFEST_BREAKAGE = {
    "bad date": (lambda m: m.update(started_at="yesterday-ish"), "started_at"),
    "missing started_at": (lambda m: m.pop("started_at"), "started_at"),
    "phase not a number": (lambda m: m.update(phase="one"), "phase"),
    "stages not a list": (lambda m: m["config"].update(stages="many"), "config.stages"),
    "stage without end": (lambda m: m["config"]["stages"][1].pop("end_s"), "end_s"),
    "stage times as text": (
        lambda m: m["config"]["stages"][0].update(start_s="zero"),
        "config.stages[0].start_s",
    ),
    "gate not an object": (lambda m: m["config"].update(gate=[1500]), "config.gate"),
    "think time wrong": (lambda m: m["config"].update(think_time_s="1-5"), "think_time_s"),
    "manifest not an object": (lambda m: (m.clear(), m.update(x=1)), "started_at"),
    # not NO GATE, exit 0: a phase-1 run whose gate is unknown is a harness error
    "config missing": (lambda m: m.pop("config"), "no config"),
    "phase 1 gate missing": (lambda m: m["config"].pop("gate"), "no gate, but phase 1"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_BREAKAGE))
def test_malformed_manifest_is_a_report_error(runs, tmp_path, case):
    """In process (each CLI start costs seconds): report and compare raise ReportError
    with one line naming the field; the CLI test below shows it becomes exit 2."""
    edit, needle = MANIFEST_BREAKAGE[case]
    bad = _broken_copy(runs["pass"], tmp_path / "bad", edit)
    for call in (lambda: report_run(bad, tmp_path / "r"), lambda: compare_dirs(bad, runs["pass"])):
        with pytest.raises(ReportError) as caught:
            call()
        message = str(caught.value)
        assert needle in message and "\n" not in message
        assert "docs/run-directory.md" in message


def test_manifest_that_is_not_an_object(runs, tmp_path):
    bad = _broken_copy(runs["pass"], tmp_path / "bad", lambda m: None)
    (bad / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ReportError, match="docs/run-directory.md"):
        report_run(bad, tmp_path / "r")


def test_malformed_manifest_on_the_command_line(runs, tmp_path):
    bad = _broken_copy(runs["pass"], tmp_path / "bad", lambda m: m.update(started_at="soon"))
    for args in (
        ["report", str(bad), "--out", str(tmp_path / "r")],
        ["compare", str(bad), str(runs["pass"]), "--out", str(tmp_path / "c")],
    ):
        result = run_cli(args, tmp_path)
        assert_one_clear_error(result, "started_at", "docs/run-directory.md")
        assert result.returncode == 2


def test_wrong_column_types_are_one_error_line(runs, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for child in runs["pass"].iterdir():
        if child.name != "events":
            (bad / child.name).symlink_to(child.resolve())
    (bad / "events").mkdir()
    table = pq.read_table(sorted((runs["pass"] / "events").glob("*.parquet"))[0])
    table = table.set_column(
        table.schema.get_field_index("latency_us"),
        "latency_us",
        pa.array([f"{v} us" for v in table["latency_us"].to_pylist()]),
    )
    pq.write_table(table, bad / "events" / "w0-0000.parquet")
    with pytest.raises(ReportError, match="latency_us"):
        report_run(bad, tmp_path / "r")


def test_unwritable_out_is_one_error_line(runs, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_cli(["report", str(runs["pass"]), "--out", str(blocker / "r")], tmp_path)
    assert_one_clear_error(result, "cannot write reports", "--out")
    assert result.returncode == 2
    comparison = compare_dirs(runs["pass"], runs["pass"])
    with pytest.raises(ReportError, match="cannot write reports"):
        write_comparison(comparison, blocker / "c")


def test_phase_0_without_criteria_is_no_gate_exit_0_only_if_valid(tmp_path):
    spec = replace(SMALL, phase=0, gate={})
    valid = write_run(tmp_path / "p0", spec)
    result = run_cli(["report", str(valid), "--out", str(tmp_path / "r")], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NO GATE" in result.stdout
    unfinished = _broken_copy(valid, tmp_path / "p0-cut", lambda m: m.update(status="interrupted"))
    code, paths = report_run(unfinished, tmp_path / "r2")
    assert code == 3 and "INVALID" in paths.md.read_text()  # NO GATE needs a valid run


def test_run_exit_codes_after_the_load(runs, tmp_path):
    """What ``loadgate run`` returns once the load has ended (docs/commands.md, exit codes)."""
    assert finish(runs["pass"], "completed", 100, report=True) == 0
    assert finish(runs["fail"], "completed", 100, report=True) == 1
    assert finish(runs["pass"], "timed_out", 100, report=True) == 3  # not completed: 3
    assert finish(runs["pass"], "completed", 100, report=False) == 0
    assert finish(runs["pass"], "locust_exit_2", 100, report=False) == 3
    assert finish(runs["pass"], "completed", 0, report=True) == 3
    # the report step failing is a harness error (2), not a gate failure (1)
    bad = _broken_copy(runs["pass"], tmp_path / "bad", lambda m: m.update(started_at=7))
    assert finish(bad, "completed", 100, report=True) == 2


def test_verdict_exit_table():
    verdicts = ("PASS", "FAIL", "INCONCLUSIVE", "INVALID", "PROJECTED", "NO GATE", "new")
    assert [verdict_exit_code(v) for v in verdicts] == [0, 1, 3, 3, 3, 0, 3]


@pytest.mark.load
@pytest.mark.smoke
def test_real_run_prints_progress_lines_to_a_pipe(smoke_run):
    """The smoke run's stdout was a pipe (tests/conftest.py ``smoke_run``)."""
    stdout = smoke_run.result.stdout
    lines = [ln for ln in stdout.splitlines() if ln.startswith("progress ")]
    # 36 s of load, a line every 10 s, one at the start and one at the end
    assert len(lines) >= 4, stdout[-3000:]
    for field in ("stage ", "users ", "req/s ", "P95 ", "errors ", "generator CPU ", "requests "):
        assert all(field in ln for ln in lines), (field, lines)
    assert "\x1b[" not in stdout  # plain text, no terminal control codes
    assert any(not ln.endswith("requests 0") for ln in lines), lines


@pytest.mark.load
def test_real_phase_0_run_is_no_gate_and_its_report_is_sane(phase0_run, tmp_path):
    """tests/conftest.py ``phase0_run``: a real short phase-0 run, stdout a pipe."""
    from tests.analysis.test_analysis_reports import assert_no_nonsense

    out, stdout, stderr = phase0_run.out, phase0_run.stdout, phase0_run.stderr
    assert "NO GATE" in stdout, stdout[-3000:] + stderr[-3000:]
    doc = json.loads((out / "report" / "report.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    valid = manifest["status"] == "completed" and all(c["ok"] is not False for c in doc["validity"])
    assert phase0_run.returncode == (0 if valid else 3), stderr[-3000:]
    assert_no_nonsense(doc, (out / "report" / "summary.md").read_text())
    assert manifest["stripe"]["rate_limit_per_s"] == 100
    stripe = [c for c in doc["headroom"]["constraints"] if c["name"] == "Stripe rate limit"]
    assert all(c["limit"] == "100 req/s" for c in stripe)
    # the same run against itself is no regression; a broken copy is one error line
    assert compare_dirs(out, out).verdict in ("no change", "insufficient data")
    bad = _broken_copy(out, tmp_path / "bad", lambda m: m["config"].update(stages={"x": 1}))
    with pytest.raises(ReportError, match="config.stages"):
        report_run(bad, tmp_path / "r")


def test_printed_verdict_block_has_every_criterion_row_in_a_log(runs, tmp_path):
    """Piped (no terminal), the summary prints the criteria table with its rows, not a
    header cut off by a fixed line count."""
    result = run_cli(["report", str(runs["pass"]), "--out", str(tmp_path / "r")], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "criterion" in out and "status" in out
    for row in ("P95 < 3000 ms", "errors < 1.00%"):
        assert row in out, out
    assert out.index("P95 < 3000 ms") > out.index("criterion")
    assert "Steps (steady-state" not in out  # the verdict block only


def test_a_numerical_zero_coefficient_prints_as_zero():
    from reports import fmt

    assert fmt.coef(3.906e-22) == "0" and fmt.coef(-1e-15) == "0"
    assert fmt.coef(0.01234567) == "0.01235" and fmt.coef_ci((3.906e-22, 0.02)) == "[0–0.02]"


def test_print_summary_keeps_the_table_after_a_long_verdict_block(tmp_path, monkeypatch):
    """Many reasons before the table (lost files, incidents, advice): every row prints."""
    import io

    from rich.console import Console

    from loadgate import report_cli

    buf = io.StringIO()
    monkeypatch.setattr(report_cli, "console", Console(file=buf, force_terminal=False, width=200))
    notes = [f"> Reason: reason {i}  " for i in range(12)]
    rows = [f"| crit{i} | {i} ms | measured | ✅ pass | d |" for i in range(5)]
    md = tmp_path / "summary.md"
    md.write_text("\n".join(
        ["## loadgate — phase 1 gate: **PASS**", "", *notes, "",
         "| criterion | value [95% CI] | basis | status | detail |", "|---|---|---|---|---|",
         *rows, "", "### Steps (steady-state windows)", "", "| load |", "|---:|", "| 1 |"]
    ))  # fmt: skip
    report_cli.print_summary(md)
    out = buf.getvalue()
    assert all(f"crit{i}" in out for i in range(5)), out
    assert "Steps" not in out
