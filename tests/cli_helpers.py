"""Running the real ``loadgate`` CLI as a child process, as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from runconfig.phase_config import DEFAULT_CONFIG


def loadgate_env(state_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "LOADGATE_STATE_DIR": str(state_dir), "COLUMNS": "200", **extra}


def run_cli(args: list[str], state_dir: Path, timeout: float = 120, **env: str):
    return subprocess.run(
        [sys.executable, "-m", "loadgate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=loadgate_env(state_dir, **env),
    )


def ctrl_c_reaches_the_child() -> None:
    """``preexec_fn`` for a CLI a test will Ctrl-C: a shell starts background commands
    with SIGINT ignored (no job control), and the ignore is inherited through pytest, so
    a suite run as ``bash .ci/run &`` sent its children a Ctrl-C they never saw.  With
    SIGINT back at its default before exec, Python installs KeyboardInterrupt as usual."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(args: list[str], state_dir: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loadgate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=loadgate_env(state_dir, **env),
        preexec_fn=ctrl_c_reaches_the_child,
    )


def wait_for_state(state_dir: Path, proc: subprocess.Popen[str], timeout: float = 120) -> dict:
    """The state file written once the stack is ready (fails if the CLI exits first)."""
    path = state_dir / "stack.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError:
                pass
        if proc.poll() is not None:
            raise AssertionError(f"loadgate exited early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.1)
    raise AssertionError("the stack did not come up in time")


def fast_config(directory: Path) -> Path:
    """The shipped phase config with short think times, so short holds see traffic."""
    text = DEFAULT_CONFIG.read_text().replace(
        "think_time_s = [1.0, 5.0]", "think_time_s = [0.2, 0.6]"
    )
    assert "[0.2, 0.6]" in text
    path = directory / "phases.toml"
    path.write_text(text)
    return path
