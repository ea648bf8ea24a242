"""One rich console for the CLI, and the one-line error format."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def progress(message: str) -> None:
    """Progress lines of long work (service starts, image builds, map prep)."""
    err_console.print(f"[dim]› {message}[/dim]")


def error(message: str, details: list[str] | None = None) -> None:
    """One clear line naming the problem and the fix; optional detail lines after."""
    err_console.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)
    for line in details or []:
        err_console.print(f"  [dim]│[/dim] {escape(line)}", soft_wrap=True)
