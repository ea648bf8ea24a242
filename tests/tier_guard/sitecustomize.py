"""Tier guard in the Python children of the test suite (see tier_guard.py beside this).

On ``PYTHONPATH`` only while pytest runs (tests/tiers.py puts it there); does nothing
unless ``$LOADGATE_TIER_LOG`` is set.
"""

import os

if os.environ.get("LOADGATE_TIER_LOG"):
    import tier_guard

    tier_guard.install()
