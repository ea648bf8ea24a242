"""Names and defaults the CLI, the stack, the service and the Locust side share, once.

Standard library only (plus the service's own ``marketplace.profiles``), so ``stack/`` and
the Locust processes import it without pulling the harness in. The profile names
are the service's own (``marketplace.profiles``, also stdlib only): the marketplace
image carries ``marketplace/`` alone, so the service cannot import this module;
they are re-exported here for the harness. What a phase runs (personas, think
times, ramps, fixture sizes, gates) is not here: that is ``config/phases.toml``,
read through ``runconfig.phase_config``.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from marketplace.profiles import DEFAULT_PROFILE, PROFILE_NAMES, ProfileName

__all__ = [
    "DEFAULT_PROFILE",
    "DEFAULT_SEED",
    "HPA_TARGET_UTILISATION",
    "PERSONAS",
    "PROFILES",
    "PROVIDERS",
    "ProfileName",
    "ProviderName",
]

DEFAULT_SEED: Final = 42
"""Seed of fixtures, personas and arrivals when none is given: same seed, same run."""

HPA_TARGET_UTILISATION: Final = 0.70
"""The seed's HPA target (§6.3, ``averageUtilization: 70``): the one planning line of CPU
(headroom's CPU row, the capacity plan's required = busy / this, cores needed in the
verdict's binding line) and ``loadgate plan``'s default utilisation. Here, not only in
``analysis.seed_plan`` (which re-exports it), so the CLI can show the default without
importing the analysis stack."""

PERSONAS: Final[tuple[str, ...]] = ("shopper", "buyer", "farmer", "driver", "admin")
"""The personas a phase's ``persona_mix`` may name: the one list. The Locust side's flows
(``scenarios.flows.FLOWS``, ``ROLE_OF``) and user classes (``scenarios.personas``) are
keyed by these names; ``tests/test_one_source.py`` ties them to this tuple."""

PROFILES: Final[tuple[str, ...]] = PROFILE_NAMES
"""Architecture profiles of the marketplace, phase0..phase3 (``marketplace/profiles.py``)."""

ProviderName = Literal["auto", "local", "containers"]
"""Stack providers; ``auto`` picks ``containers`` where a Docker engine answers, else
``local`` (``stack/engine.py``)."""
PROVIDERS: Final[tuple[str, ...]] = get_args(ProviderName)
