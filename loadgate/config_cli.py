"""``loadgate config check [FILE]``: validate a phase config and show what each phase runs.

A run rejects a bad config before anything starts, but only for the phase it runs
and only once a stack is wanted. This checks every phase of a file at once, with no
stack, and prints each phase as ``loadgate run`` would execute it (defaults applied,
through :func:`runconfig.phase_config.resolve`), so a change to the TOML can be
reviewed by its effect: users, profile, ramp, run length, persona mix, think times
and gate criteria.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from loadgate.console import console, error
from runconfig.phase_config import DEFAULT_CONFIG, ConfigError, ResolvedPhase, load_phases, resolve
from runformat.criteria import criterion

app = typer.Typer(help="The phase config (config/phases.toml): check it, show it resolved.")


@app.callback()
def config() -> None:
    """The phase config (config/phases.toml): check it, show it resolved."""


@app.command("check")
def check(
    file: Annotated[
        Path | None, typer.Argument(help="Phase config TOML (default: config/phases.toml).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the resolved phases as JSON instead.")
    ] = False,
) -> None:
    """Validate a phase config; print every phase resolved. Bad file: one error line, exit 2."""
    path = file or DEFAULT_CONFIG
    try:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file: give the path of a phase config TOML")
        config = load_phases(path)
        phases = [resolve(config, number) for number in sorted(config.phases)]
    except ConfigError as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps([p.model_dump(mode="json") for p in phases], indent=2))
        return
    console.print(phase_table(phases, path))
    console.print(f"{path}: valid, {len(phases)} phase(s)")


def phase_table(phases: list[ResolvedPhase], path: Path) -> Table:
    table = Table(title=f"phases of {path}", title_justify="left", show_lines=True)
    for column in ("phase", "users", "profile", "ramp", "length", "persona mix", "think", "gate"):
        table.add_column(column, justify="right" if column in ("users", "length") else "left")
    for phase in phases:
        table.add_row(*phase_cells(phase))
    return table


def phase_cells(phase: ResolvedPhase) -> list[str]:
    """One phase as table cells (also what the tests compare with :func:`resolve`)."""
    return [
        f"{phase.phase} {phase.name}",
        f"target {phase.target_users:,}\ngate {gate_load(phase)}",
        f"{phase.profile}\n{phase.model} model\nfixtures {phase.fixture_size}",
        ramp_text(phase),
        duration_text(phase.duration_s),
        "\n".join(mix_lines(phase.persona_mix)),
        "{:g}-{:g} s".format(*phase.think_time_s),
        "\n".join(gate_lines(phase.gate)) or "none (baseline)",
    ]


def gate_load(phase: ResolvedPhase) -> str:
    """The load the gate is judged at: users (closed model) or arrivals/s (open)."""
    rate = phase.gate.get("rate")
    return f"{rate:g}/s" if rate is not None else f"{phase.gate_users:,} users"


def ramp_text(phase: ResolvedPhase) -> str:
    """Steps, their ramp and hold seconds, the gate step's hold and the warm-up."""
    holds = [s for s in phase.stages if s.kind == "hold"]
    ramps = [s for s in phase.stages if s.kind == "ramp"]
    if not holds:
        return "no stages"
    ramp_s = ramps[0].end_s - ramps[0].start_s if ramps else 0.0
    hold_s = holds[0].end_s - holds[0].start_s
    gate_s = holds[-1].end_s - holds[-1].start_s
    return (
        f"{len(holds)} steps: ramp {ramp_s:g} s, hold {hold_s:g} s\n"
        f"gate step hold {gate_s:g} s, warm-up {holds[0].warmup_s:g} s\n"
        f"users {holds[0].users:,} to {holds[-1].users:,}"
    )


def duration_text(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{seconds:g} s ({minutes}m {rest:02d}s)"


def mix_lines(mix: dict[str, float]) -> list[str]:
    """The persona mix as shares of all users (the config's weights need not sum to 100)."""
    total = sum(mix.values())
    return [f"{name} {weight / total:.0%}" for name, weight in mix.items() if weight > 0]


def gate_lines(gate: dict) -> list[str]:
    """Each criterion in the registry's words, e.g. ``P95 < 2000 ms``."""
    lines = [criterion(name).describe(limit) for name, limit in gate.get("criteria", {}).items()]
    for route, criteria in gate.get("routes", {}).items():
        lines += [criterion(name).describe(limit, route) for name, limit in criteria.items()]
    return lines
