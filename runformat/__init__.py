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

from runformat.criteria import CRITERIA, Criterion, criterion
from runformat.gate import GateSpec
from runformat.manifest import Manifest, RunFormatError, RunStatus, read_manifest, update_manifest
from runformat.verdicts import HARNESS_ERROR_EXIT, Verdict

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
