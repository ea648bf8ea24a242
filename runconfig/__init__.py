"""What a run is configured to do: the phase config's models and the defaults they share.

A bottom-layer package (it imports only ``runformat`` and ``marketplace.profiles``, and
those import nothing of the harness), so ``stack/``, ``fixtures/``, ``scenarios/``,
``analysis/`` and the CLI all read the configuration from here and none of them has to
import ``loadgate/`` (the CLI and orchestration, the top layer):

- :mod:`runconfig.constants` — the default seed, the profile and provider names;
- :mod:`runconfig.phase_config` — ``config/phases.toml`` loaded, validated and resolved;
- :mod:`runconfig.traffic` — a phase's traffic shape (``[phases.N.traffic]``);
- :mod:`runconfig.sizes` — the named fixture sizes a phase config picks from;
- :mod:`runconfig.faults` — fault specs as declared (running them is :mod:`loadgate.faults`);
- :mod:`runconfig.reproduce` — the load plans of ``[reproduce.NAME]``.

Kept free of imports itself, so importing one module does not load the others.
"""
