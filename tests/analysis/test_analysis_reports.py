"""Reports: files, JSON schema, JUnit cases, Markdown, and the HTML in headless Chromium."""

from __future__ import annotations

import copy
import json
import re
import shutil
import socketserver
import subprocess
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

import reports
from analysis import analyze, load_run
from analysis.compare import compare_runs
from reports import charts, html
from reports.json_report import SCHEMA
from tests.synthetic import SyntheticSpec, write_run

#: Chromium's own background services (component updater, sign-in, network time) still call
#: home despite the --disable-* flags.  The recording proxy refuses them (no traffic leaves
#: the machine); they are not requests made by the page, so they are ignored here.
BROWSER_SERVICE_HOSTS = {
    "update.googleapis.com",
    "accounts.google.com",
    "clients2.google.com",
    "clients2.googleusercontent.com",
    "redirector.gvt1.com",
    "safebrowsing.googleapis.com",
    "optimizationguide-pa.googleapis.com",
    "content-autofill.googleapis.com",
    "android.clients.google.com",
    "edgedl.me.gvt1.com",
    "www.googleapis.com",
}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def written(base_result, tmp_path_factory):
    return reports.write_all(base_result, tmp_path_factory.mktemp("report"))


def test_all_files_written(written):
    for p in (written.html, written.md, written.json, written.junit):
        assert p.exists() and p.stat().st_size > 0


def test_json_schema(written, base_result):
    doc = json.loads(written.json.read_text())
    assert doc["schema"] == SCHEMA and doc["verdict"] == base_result.verdict
    assert set(doc) >= {
        "run",
        "gate",
        "steps",
        "validity",
        "saturation",
        "headroom",
        "faults",
        "warnings",
    }
    step = doc["steps"][-1]
    assert set(step["latency"]) >= {"n", "p50", "p90", "p95", "p99", "max_ms"}
    assert step["latency"]["p95"]["ci_ms"][0] <= step["latency"]["p95"]["value_ms"]
    assert doc["steps"][0]["latency"]["p99"]["insufficient"].startswith("insufficient data")
    assert {c["basis"] for c in doc["gate"]["criteria"]} <= {"measured", "projected", "none"}
    usl = doc["saturation"]["usl"]
    assert set(usl) >= {"sigma", "kappa", "lambda", "n_star", "x_max", "r2", "sigma_ci"}


def test_junit_one_case_per_criterion(written, base_result):
    suite = ET.parse(written.junit).getroot()
    cases = suite.findall("testcase")
    assert len(cases) == len(base_result.gate.criteria) == int(suite.get("tests"))
    failed = [c for c in base_result.gate.criteria if c.status == "fail"]
    assert int(suite.get("failures")) == len(failed)


def test_markdown_summary(written, base_result):
    md = written.md.read_text()
    assert f"**{base_result.verdict}**" in md.splitlines()[0]
    assert "| criterion |" in md and "insufficient data" in md
    assert base_result.headroom.sentence in md


def test_html_is_self_contained(written):
    html = written.html.read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert "url(" not in html and "@import" not in html
    assert html.count('src="data:image/png;base64,') == 5
    assert html.index('class="verdict') < html.index("Gate criteria")
    assert "measured" in html and "projected" in html


def test_comparison_reports(base_run_dir, tmp_path):
    run = load_run(base_run_dir)
    comp = compare_runs(run, run)
    paths = reports.write_comparison(comp, tmp_path)
    assert json.loads(paths.json.read_text())["verdict"] == "no change"
    assert "Hodges" in paths.md.read_text() and "<script" not in paths.html.read_text()


class _Recorder(BaseHTTPRequestHandler):
    """A proxy that answers 502 to everything and remembers what was asked."""

    seen: list[str] = []

    def _deny(self):
        _Recorder.seen.append(f"{self.command} {self.path}")
        self.send_response(502)
        self.end_headers()

    do_GET = do_POST = do_CONNECT = do_HEAD = _deny

    def log_message(self, *args):
        pass


def _open_in_chromium(html: Path, screenshot: Path, tmp: Path) -> tuple[list[str], str]:
    """Load ``html`` in headless Chromium with all traffic forced through a local recorder."""
    _Recorder.seen = []
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Recorder) as proxy:
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        port = proxy.server_address[1]
        cmd = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-domain-reliability",
            "--no-pings",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            f"--proxy-server=http://127.0.0.1:{port}",
            "--proxy-bypass-list=<-loopback>",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={screenshot}",
            "--window-size=1280,2000",
            "--virtual-time-budget=3000",
            html.as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        proxy.shutdown()
    return list(_Recorder.seen), proc.stderr


def _page_requests(requests: list[str]) -> list[str]:
    out = []
    for r in requests:
        target = r.split(" ", 1)[1]
        host = re.sub(r"^\w+://", "", target).split("/")[0].split(":")[0]
        if host not in BROWSER_SERVICE_HOSTS:
            out.append(r)
    return out


def _console_errors(stderr: str) -> list[str]:
    return [
        ln
        for ln in stderr.splitlines()
        if "CONSOLE" in ln or "Uncaught" in ln or "Failed to load resource" in ln
    ]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_html_in_headless_chromium(written, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    requests, stderr = _open_in_chromium(written.html, shot, tmp_path)
    assert _page_requests(requests) == [], requests
    assert _console_errors(stderr) == []
    assert shot.exists() and shot.stat().st_size > 20_000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_chromium_check_catches_a_fetch(tmp_path):
    """Control: the recorder does see a page that fetches something."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><img src="http://example.invalid/x.png">'
        "<script>undefinedFunction()</script>"
    )
    requests, stderr = _open_in_chromium(page, tmp_path / "bad.png", tmp_path)
    assert any("example.invalid" in r for r in _page_requests(requests))
    assert _console_errors(stderr)


def test_report_run_end_to_end(base_run_dir, tmp_path):
    code, paths = reports.report_run(base_run_dir, tmp_path / "out", baseline_dir=base_run_dir)
    assert code == 0 and paths.html.exists()  # synthetic default gate passes; no regression
    assert (tmp_path / "out" / "comparison.md").exists()
    with pytest.raises(reports.ReportError, match="no manifest.json"):
        reports.report_run(tmp_path / "nope", tmp_path / "x")


def assert_no_nonsense(doc: dict, *texts: str) -> None:
    """Issue 9's rules on a report.json (and the Markdown/HTML texts of the same run).

    No number beyond 3x the highest measured load (configured loads excepted), no USL
    shown with R² < 0.8, no rate outside [0, 1], no negative latency, no point outside
    its own interval.
    """
    top = max((s["load"] for s in doc["steps"] if s["n"]), default=0.0)
    limit = 3 * top
    usl = doc["saturation"]["usl"]
    if usl["refused"] is None:
        assert usl["r2"] >= 0.8, usl
    else:
        assert usl["n_star"] is None and usl["r2"] is None, usl
    if usl["n_star"] is not None:
        assert usl["n_star"] <= limit and _inside(usl["n_star"], usl["n_star_ci"]), usl
    for c in doc["headroom"]["constraints"]:
        if c["load"] is not None:
            assert c["load"] <= limit and _inside(c["load"], c["ci"]), c
    for c in doc["gate"]["criteria"]:
        if c["value"] is None:
            continue
        assert _inside(c["value"], c["ci"]), c
        if c["name"].endswith("_rate"):
            assert 0.0 <= c["value"] <= 1.0, c
        if c["name"].endswith("_ms"):
            assert c["value"] > 0, c
        if c["basis"] == "projected":
            assert c["load"] <= limit, c
    for st in doc["steps"]:
        assert _inside(st["throughput_rps"], st["throughput_ci"]), st["name"]
        assert _inside(st["error_rate"], st["error_rate_ci"]), st["name"]
    configured = {doc["gate"]["load"], doc["headroom"]["target"]}
    for text in texts:
        for m in re.finditer(r"(\d[\d,]*(?:\.\d+)?) users", text):
            value = float(m.group(1).replace(",", ""))
            assert value <= limit or value in configured, (m.group(0), limit)
        assert not re.search(r"R² = -|R²=-", text)


def _inside(value, ci) -> bool:
    if not ci:
        return True
    lo, hi = ci
    return (lo is None or lo <= value) and (hi is None or value <= hi)


@pytest.fixture(scope="module")
def linear_run_dir(tmp_path_factory):
    """A run that scales almost linearly up to 1,500 users (kappa = 0) and a gate load
    of 15,000: today's USL put N* at billions of users and projected the gate from there."""
    spec = SyntheticSpec(
        levels=(250, 500, 750, 1000, 1250, 1500),
        hold_s=20,
        ramp_s=5,
        warmup_s=2,
        sigma=0.0005,
        kappa=0.0,
        gate={
            "users": 15000,
            "target_users": 10000,
            "criteria": {"p95_ms": 1500, "error_rate": 0.01},
        },
    )
    return write_run(tmp_path_factory.mktemp("linear") / "run", spec)


def test_reports_never_show_nonsense(linear_run_dir, tmp_path):
    result = analyze(load_run(linear_run_dir))
    paths = reports.write_all(result, tmp_path)
    doc = json.loads(paths.json.read_text())
    md = paths.md.read_text()
    assert_no_nonsense(doc, md, paths.html.read_text())
    assert "no peak within the measured range" in md
    p95 = next(c for c in doc["gate"]["criteria"] if c["name"] == "p95_ms")
    assert p95["value"] is None and "beyond the measured range" in p95["detail"]


def test_default_synthetic_report_is_sane(written):
    assert_no_nonsense(json.loads(written.json.read_text()), written.md.read_text())


def test_a_throughput_point_outside_its_interval_does_not_crash_a_chart(base_result):
    result = copy.deepcopy(base_result)
    st = result.steps[-1]
    st.throughput_ci = (st.throughput_rps + 5, st.throughput_rps + 10)
    png = charts.throughput_vs_users(result)
    assert png.startswith(b"\x89PNG")


def test_a_chart_that_fails_is_reported_in_place(base_result, monkeypatch):
    result = copy.deepcopy(base_result)

    def broken(_r):
        raise ValueError("boom")

    monkeypatch.setitem(charts.CHARTS, "resources", broken)
    page = html.render(result)
    assert "chart not drawn: ValueError: boom" in page
    assert any("boom" in w for w in result.warnings)


def test_route_tables_say_which_windows_they_cover(base_result, written):
    routes = base_result.routes
    assert "steady-state windows of 6 step(s)" in routes.description
    assert "ramps and warm-up excluded" in routes.description
    # exactly the steady-state records: the steps' per-route counts, not the ramps'
    for e in routes.endpoints:
        assert e.n == sum(
            x.n for st in base_result.steps for x in st.endpoints if x.endpoint == e.endpoint
        )
    assert sum(e.n for e in routes.endpoints) < base_result.n_records
    md = written.md.read_text()
    assert f"### Per route, whole run ({routes.description}" in md
    assert "| window |" in md and "t = " in md
    page = written.html.read_text()
    assert "steady-state window t = " in page and routes.description in page
    doc = json.loads(written.json.read_text())
    assert doc["routes"]["description"] == routes.description
