"""What every command shares: its console, and how it fails (one line, an exit code)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

EXIT_CONFIG = 2
"""The config file, the data or an option is wrong (nothing was called)."""
EXIT_CALL = 3
"""The routed call failed: every model failed, a budget refused, ..."""
EXIT_INTEGRITY = 4
"""A local model's files do not match ``llmrouter.lock`` (``models verify``)."""


def make_console(stderr: bool = False) -> Console:
    """A console that does not wrap at 80 columns when the output is not a terminal."""
    return Console(stderr=stderr, width=None if sys.stdout.isatty() else 132)


def fail(message: str, code: int = EXIT_CONFIG) -> typer.Exit:
    """Print ``error: message`` on stderr (as plain text, never as rich markup) and return
    the `typer.Exit` to raise."""
    console = make_console(stderr=True)
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)
