"""``llmrouter batch``: a JSON Lines file of prompts through a config's router."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from llmrouter._cli_output import EXIT_CALL, EXIT_CONFIG, fail, make_console
from llmrouter.batch._jobs import BatchItem, BatchReport, read_items, run_batch
from llmrouter.config._cli import ConfigArg, RouterOpt, _load, _pick
from llmrouter.errors import ConfigurationError


def batch_command(
    config: ConfigArg,
    requests: Annotated[
        Path, typer.Argument(help="JSON Lines: one {id, prompt | messages, task} per line.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results, JSON Lines (appended).")],
    router: RouterOpt = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Requests in flight at once.")
    ] = 8,
    retry_failed: Annotated[
        bool, typer.Option(help="Ask again the requests whose result is a failure.")
    ] = False,
    celery: Annotated[
        bool,
        typer.Option(
            "--celery",
            help="Send the requests to Celery workers (llmrouter.integrations.celery) "
            "instead of calling the models here; --concurrency is then the number of "
            "tasks out at once.",
        ),
    ] = False,
    broker: Annotated[
        str | None,
        typer.Option(help="With --celery: the broker URL (default: CELERY_BROKER_URL)."),
    ] = None,
) -> None:
    """Route every request of a JSON Lines file and write one result per line to --out.

    Run it again with the same --out to go on where it stopped: requests that
    already have a result are skipped. Exit code 3 when some requests failed.
    With --celery, workers started with `celery -A llmrouter.integrations.celery
    worker` answer them; they need the config at the same path.
    """
    try:
        items = read_items(requests)
    except (ConfigurationError, OSError) as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    chosen = _pick(_load(config), router)
    console = make_console(stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeRemainingColumn(),
        console=console,
    )
    with progress:
        bar = progress.add_task("batch", total=len(items), failed=0)
        failed = 0

        def advance(result: dict[str, Any]) -> None:
            nonlocal failed
            failed += 0 if result["ok"] else 1
            progress.update(bar, advance=1, failed=failed)

        try:
            if celery:
                report = _on_celery(
                    config, router, broker, items, out, concurrency, retry_failed, advance
                )
            else:
                report = asyncio.run(
                    run_batch(
                        chosen,
                        items,
                        out,
                        concurrency=concurrency,
                        retry_failed=retry_failed,
                        on_result=advance,
                    )
                )
        except ConfigurationError as exc:
            raise fail(str(exc), EXIT_CONFIG) from None
        except KeyboardInterrupt:
            raise fail(f"interrupted: run the same command again to go on ({out})", 130) from None
        progress.update(bar, completed=report.skipped + report.asked)
    console.print(
        f"{report.answered} answered, {report.failed} failed, {report.skipped} already done; "
        f"${report.cost_usd:.6f}; results in {out}"
    )
    if report.failed:
        kinds = sorted(set(report.failures.values()))
        raise fail(f"{report.failed} requests failed ({', '.join(kinds)})", EXIT_CALL)


def _on_celery(
    config: Path,
    router: str | None,
    broker: str | None,
    items: list[BatchItem],
    out: Path,
    concurrency: int,
    retry_failed: bool,
    advance: Callable[[dict[str, Any]], None],
) -> BatchReport:
    try:
        from llmrouter.integrations.celery import create_app, run_batch_on_celery
    except ImportError:
        raise fail("--celery needs Celery: pip install 'llmrouter[celery]'", EXIT_CONFIG) from None
    return run_batch_on_celery(
        items,
        out,
        config=config,
        router=router,
        app=create_app(broker),
        concurrency=concurrency,
        retry_failed=retry_failed,
        on_result=advance,
    )
