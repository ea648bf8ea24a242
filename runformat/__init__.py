"""The run directory's format: written by ``loadgate run``, read by ``analysis``.

One bottom-layer package (it imports nothing else of the project) holds everything both
sides must agree on, so there is exactly one dialect:

- :mod:`runformat.schemas` — the Parquet schemas of events, samples and arrivals, the
  error classes and the business outcomes a request can end in;
- :mod:`runformat.manifest` — the typed ``manifest.json`` (run status included);
- :mod:`runformat.gate` — the gate of a phase as recorded in the manifest;
- :mod:`runformat.criteria` — the registry of gate criteria (name, comparison, how it is
  evaluated, how it is described) that config validation, evaluation and reports read;
- :mod:`runformat.verdicts` — the verdict vocabulary and its exit codes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runformat.criteria import CRITERIA, Criterion, criterion
    from runformat.gate import GateSpec
    from runformat.manifest import (
        Manifest,
        RunFormatError,
        RunStatus,
        read_manifest,
        update_manifest,
    )
    from runformat.verdicts import HARNESS_ERROR_EXIT, Verdict

# Imported on first use (PEP 562): the manifest's module needs pandas, and a reader of
# the verdicts or the criteria alone (the CLI, at start) should not pay for it.
_HOMES = {
    "CRITERIA": "runformat.criteria",
    "Criterion": "runformat.criteria",
    "criterion": "runformat.criteria",
    "GateSpec": "runformat.gate",
    "Manifest": "runformat.manifest",
    "RunFormatError": "runformat.manifest",
    "RunStatus": "runformat.manifest",
    "read_manifest": "runformat.manifest",
    "update_manifest": "runformat.manifest",
    "HARNESS_ERROR_EXIT": "runformat.verdicts",
    "Verdict": "runformat.verdicts",
}

__all__ = [
    "CRITERIA",
    "HARNESS_ERROR_EXIT",
    "Criterion",
    "GateSpec",
    "Manifest",
    "RunFormatError",
    "RunStatus",
    "Verdict",
    "criterion",
    "read_manifest",
    "update_manifest",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value  # resolved once: later reads are plain attributes
        return value
    try:  # a submodule read as an attribute (``runformat.rundir``) after ``import runformat``
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
