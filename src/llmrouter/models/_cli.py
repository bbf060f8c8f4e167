"""``llmrouter models``: pull, list, verify and remove local models; or a config's models.

Exit codes: 0 done; 2 a wrong option, or a model that is not there; 3 the hub
could not be reached; 4 files differ from the lock (``verify``) or from what the
hub sent (``pull``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from llmrouter._cli_output import EXIT_CALL, EXIT_CONFIG, EXIT_INTEGRITY, fail, make_console
from llmrouter.errors import ConfigurationError, IntegrityError
from llmrouter.models._hub import verify_model
from llmrouter.models._lock import LOCK_FILE, ModelLock

models_app = typer.Typer(
    help="Local models (pull, list, verify, remove) and the models of a config.",
    no_args_is_help=True,
)

LockOpt = Annotated[
    Path, typer.Option("--lock", help="The lock file recording each model's files.")
]
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", help="Hugging Face cache folder (default: HF_HUB_CACHE or HF_HOME/hub)."
    ),
]
RevisionOpt = Annotated[
    str | None, typer.Option("--revision", help="Branch, tag or commit (default: main).")
]


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


@models_app.command("pull")
def pull_command(
    model: Annotated[str, typer.Argument(help="Hub repo id (org/name) or a local directory.")],
    revision: RevisionOpt = None,
    cache_dir: CacheOpt = None,
    include: Annotated[
        list[str] | None,
        typer.Option("--include", help="Only files matching this glob (repeatable)."),
    ] = None,
    lock: LockOpt = Path(LOCK_FILE),
    no_lock: Annotated[bool, typer.Option("--no-lock", help="Do not record it.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Download every file again (repairs damage).")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(help="Hub token (default: HF_TOKEN or the stored login).", show_default=False),
    ] = None,
) -> None:
    """Download a model into the Hugging Face cache (resumable, with progress) and record
    its commit and the sha256 of every file in the lock."""
    from llmrouter.models._hub import pull_model

    try:
        folder, entry = pull_model(
            model,
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=include,
            token=token,
            lock=None if no_lock else lock,
            force=force,
        )
    except IntegrityError as exc:
        raise fail(str(exc), EXIT_INTEGRITY) from None
    except ConfigurationError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    except OSError as exc:  # the hub is unreachable, the disk is full, ...
        raise fail(f"cannot pull {model!r}: {exc}", EXIT_CALL) from None
    console = make_console()
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    where = f"{folder}"
    if entry is None:
        console.print(f"pulled {model}: {_size(total)} in {where} (not locked)")
        return
    commit = f" at {entry.commit[:12]}" if entry.commit else ""
    console.print(
        f"pulled {model}{commit}: {entry.size} files, {_size(total)} in {where}; "
        f"sha256 recorded in {lock}"
    )


@models_app.command("list")
def list_command(
    config: Annotated[
        Path | None,
        typer.Argument(help="A config file: list its models instead of the local cache."),
    ] = None,
    cache_dir: CacheOpt = None,
    lock: LockOpt = Path(LOCK_FILE),
) -> None:
    """The models in the local Hugging Face cache and in the lock; with a CONFIG, the
    config's models (tasks, prices, context window, breaker state)."""
    if config is not None:
        from llmrouter.config._cli import list_config_models

        list_config_models(config)
        return
    from llmrouter.models._hub import cache_listing

    try:
        model_lock = ModelLock.read(lock)
    except ConfigurationError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    rows = cache_listing(cache_dir)
    table = Table(title=f"local models ({len(rows)} in the cache; lock: {lock})")
    for column in ("model", "commit", "refs", "size", "files", "lock"):
        table.add_column(column, overflow="fold")
    for row in rows:
        found = model_lock.find(str(row["repo"]))
        status = "-"
        if found is not None:
            status = "locked" if found[1].commit == row["commit"] else "other commit"
        table.add_row(
            str(row["repo"]),
            str(row["commit"])[:12],
            ", ".join(row["refs"]) or "-",
            _size(int(row["bytes"])),
            str(row["files"]),
            status,
        )
    cached = {(str(r["repo"]), str(r["commit"])) for r in rows}
    for name, entry in sorted(model_lock.models.items()):
        if entry.repo is None:
            table.add_row(name, "-", "-", "-", str(entry.size), "locked (directory)")
        elif (entry.repo, entry.commit) not in cached:
            commit = (entry.commit or "")[:12]
            table.add_row(entry.repo, commit, "-", "-", str(entry.size), "locked, not cached")
    make_console().print(table)


@models_app.command("verify")
def verify_command(
    models: Annotated[
        list[str] | None, typer.Argument(help="Models to check (default: all in the lock).")
    ] = None,
    lock: LockOpt = Path(LOCK_FILE),
    cache_dir: CacheOpt = None,
) -> None:
    """Hash the files of locked models again and report every file that differs from the
    lock (exit code 4 if any does)."""
    try:
        names = models or ModelLock.read(lock).names()
    except ConfigurationError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    if not names:
        raise fail(f"{lock} lists no model: pull one first (llmrouter models pull ...)")
    console = make_console()
    bad = 0
    for name in names:
        try:
            problems = verify_model(name, lock=lock, cache_dir=cache_dir)
        except ConfigurationError as exc:
            raise fail(str(exc), EXIT_CONFIG) from None
        if not problems:
            console.print(f"[green]ok[/green]        {name}", highlight=False)
            continue
        bad += 1
        console.print(f"[red]mismatch[/red]  {name}", highlight=False)
        for problem in problems:
            console.print(f"          {problem}", highlight=False, markup=False)
    if bad:
        console.print(
            f"{bad} of {len(names)} models differ from {lock}: pull them again "
            "(llmrouter models pull MODEL --force) if damaged, or pull them without --force "
            "to record an intended change",
            highlight=False,
        )
        raise typer.Exit(EXIT_INTEGRITY)


@models_app.command("remove")
def remove_command(
    model: Annotated[str, typer.Argument(help="Hub repo id (org/name).")],
    revision: Annotated[
        str | None,
        typer.Option("--revision", help="Only this commit or ref (default: every revision)."),
    ] = None,
    cache_dir: CacheOpt = None,
    lock: LockOpt = Path(LOCK_FILE),
) -> None:
    """Delete a model from the Hugging Face cache and its entry from the lock."""
    from llmrouter.models._hub import remove_model

    try:
        freed, listed = remove_model(model, revision=revision, cache_dir=cache_dir, lock=lock)
    except ConfigurationError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None
    unlocked = f"; removed from {lock}" if listed else ""
    make_console().print(f"removed {model}: {_size(freed)} freed{unlocked}", highlight=False)
