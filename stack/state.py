"""The state file of the stack that is up, so other commands can find it.

``stack up`` writes it once every service is ready (whether it stays in the
foreground or detaches) and removes it on teardown; ``stack status`` and
``stack down`` read it. The supervisor's pid inside says whether it is stale.

It also carries the stack's token signing secret, so ``loadgate fixtures load``
against a detached stack mints tokens the service accepts: the file is therefore
written owner-only (0600), like the credentials file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from stack.stack import Stack

SECRET_KEY = "auth_secret"


def state_dir() -> Path:
    root = os.environ.get("LOADGATE_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "loadgate"
    )
    return Path(root)


def state_path() -> Path:
    return state_dir() / "stack.json"


def write_state(stack: Stack, detached: bool) -> Path:
    """Record the running stack (atomically: readers never see half a file; owner-only)."""
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "stack_id": stack.stack_id,
        "supervisor_pid": os.getpid(),
        "provider": stack.provider.name if stack.provider else None,
        "detached": detached,
        "ready_after_s": stack.ready_after_s,
        "services": [asdict(s) for s in stack.status()],
        SECRET_KEY: stack.config.auth_secret,
    }
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # a leftover could have a wider mode than 0600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    tmp.replace(path)
    return path


def read_state() -> dict[str, Any] | None:
    """The recorded stack, or ``None`` when none is recorded or it is stale.

    Without its signing secret (see :func:`stack_secret`), so callers that print the
    state (``stack status --json``) cannot leak it.
    """
    data = _read_live()
    if data is not None:
        data.pop(SECRET_KEY, None)
    return data


def stack_secret() -> str | None:
    """The signing secret of the stack that is up, or None when none is recorded."""
    data = _read_live()
    return data.get(SECRET_KEY) if data else None


def _read_live() -> dict[str, Any] | None:
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
