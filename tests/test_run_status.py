"""A run whose load ended before its plan did is not "completed" (issue 10: on an
overloaded box Locust's master stops the test when its worker misses heartbeats)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from loadgate.run.locust_phase import stopped_early
from runformat import rundir

START = datetime(2026, 11, 27, 16, 47, 41, tzinfo=UTC)


def _started(tmp_path):
    (tmp_path / rundir.TEST_START_FILE).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rundir.TEST_START_FILE).write_text(
        json.dumps({"load_started_at": START.isoformat()})
    )
    return tmp_path


def test_load_that_ended_half_a_minute_into_a_300_s_plan_is_named(tmp_path):
    why = stopped_early(_started(tmp_path), 300.0, now=START + timedelta(seconds=28))
    assert why is not None
    assert "28 s of the plan's 300 s" in why


def test_load_that_ran_the_whole_plan_is_not_flagged(tmp_path):
    assert stopped_early(_started(tmp_path), 300.0, now=START + timedelta(seconds=301)) is None
    # Locust's own stop takes a moment: a few seconds short is still the whole plan
    assert stopped_early(_started(tmp_path), 300.0, now=START + timedelta(seconds=295)) is None


def test_load_that_never_started_leaves_the_reason_to_locust(tmp_path):
    assert stopped_early(tmp_path, 300.0, now=START) is None
