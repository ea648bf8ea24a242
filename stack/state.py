"""The state file of the stack that is up, so other commands can find it.

``stack up`` writes it once every service is ready (whether it stays in the
foreground or detaches) and removes it on teardown; ``stack status`` and
``stack down`` read it. The supervisor's pid inside says whether it is stale.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from stack.stack import Stack


def state_dir() -> Path:
    root = os.environ.get("LOADGATE_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "loadgate"
    )
    return Path(root)


def state_path() -> Path:
    return state_dir() / "stack.json"


def write_state(stack: Stack, detached: bool) -> Path:
    """Record the running stack (atomically: readers never see half a file)."""
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "stack_id": stack.stack_id,
        "supervisor_pid": os.getpid(),
        "provider": stack.provider.name if stack.provider else None,
        "detached": detached,
        "ready_after_s": stack.ready_after_s,
        "services": [asdict(s) for s in stack.status()],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
    return path


def read_state() -> dict[str, Any] | None:
    """The recorded stack, or ``None`` when none is recorded or it is stale."""
    path = state_path()
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not psutil.pid_exists(int(data.get("supervisor_pid", 0))):
        path.unlink(missing_ok=True)
        return None
    return data


def clear_state(stack_id: str) -> None:
    path = state_path()
    try:
        if json.loads(path.read_text()).get("stack_id") == stack_id:
            path.unlink(missing_ok=True)
    except (FileNotFoundError, json.JSONDecodeError):
        pass
