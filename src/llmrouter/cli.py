"""The ``llmrouter`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="llmrouter: LangChain routing chains.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """llmrouter: local and remote models behind one LangChain chat model."""


@app.command()
def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="Where to build the tiny demo models (reused).")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens each answer may use.")] = 12,
) -> None:
    """Route a handful of prompts offline and print what each router decision was."""
    from llmrouter import demo as demo_mod

    console = Console(width=None if sys.stdout.isatty() else 132)
    with console.status("Building the tiny demo models and the router..."):
        router = demo_mod.build_router(
            workdir or demo_mod.default_workdir(), max_new_tokens=max_new_tokens
        )
    with console.status("Routing prompts..."):
        rows = demo_mod.run(router)
    table = Table(title=f"{router.router_name}: {len(rows)} prompts routed", show_lines=False)
    for column in (
        "prompt",
        "task (how decided)",
        "model",
        "latency ms",
        "tokens in/out",
        "cost USD",
    ):
        table.add_column(column, overflow="fold")
    total = 0.0
    for row in rows:
        rec = row.record
        tokens = f"{rec.usage.input_tokens}/{rec.usage.output_tokens}" if rec.usage else "-"
        cost = rec.cost_usd or 0.0
        total += cost
        table.add_row(
            row.prompt,
            f"{rec.task or '-'} ({rec.task_source})",
            str(rec.model),
            f"{rec.latency_s * 1000:.0f}",
            tokens,
            f"{cost:.8f}",
        )
    console.print(table)
    console.print(f"total cost: ${total:.8f}")
    console.print("(tiny random models: the answers are noise; the routing is real)")


def _register_learning() -> None:
    from llmrouter.learn._cli import evaluate_command, fit_command

    app.command("fit")(fit_command)
    app.command("evaluate")(evaluate_command)


def _register_config() -> None:
    from llmrouter.batch._cli import batch_command
    from llmrouter.config import _cli, _report

    app.command("check")(_cli.check_command)
    app.command("schema")(_cli.schema_command)
    app.command("run")(_cli.run_command)
    app.command("chat")(_cli.chat_command)
    app.command("serve")(_cli.serve_command)
    app.command("batch")(batch_command)
    app.command("report")(_report.report_command)
    from llmrouter.models._cli import models_app

    app.add_typer(models_app, name="models")


_register_learning()
_register_config()
