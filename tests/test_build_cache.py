"""stack.build_cache: the lock and the error quoting shared by the cached builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.build_cache import cache_root, file_lock, last_line
from stack.errors import StackError


def test_cache_root_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOADGATE_CACHE_DIR", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("LOADGATE_CACHE_DIR")
    assert cache_root() == Path.home() / ".cache" / "loadgate"


def test_a_held_lock_refuses_a_second_holder_with_the_fix(tmp_path: Path) -> None:
    lock = tmp_path / "sub" / "x.lock"
    with (
        file_lock(lock),
        pytest.raises(StackError, match="delete the lock file"),
        file_lock(lock, timeout=0),
    ):
        pass
    with file_lock(lock, timeout=0):  # released: free again
        pass


def test_last_line_prefers_the_error_line() -> None:
    output = "[info] reading\n[error] bad block 7\n[info] cleanup\n\n"
    assert last_line(output, prefer=("error",)) == "[error] bad block 7"
    assert last_line(output) == "[info] cleanup"
    assert last_line("  \n") == "no output"
