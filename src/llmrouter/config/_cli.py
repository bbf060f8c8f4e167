"""The config-file commands: ``check``, ``schema``, ``run``, ``chat``, ``serve``, and the
table of a config's models (``models list CONFIG``).

Exit codes scripts can rely on: 0 done; 2 the config (or an option) is wrong;
3 the call failed (every model failed, a budget refused, ...); 130 interrupted.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmrouter._cli_output import EXIT_CALL, EXIT_CONFIG, fail, make_console
from llmrouter.errors import ConfigurationError, LLMRouterError
from llmrouter.record import RouteRecord, route_chain

ConfigArg = Annotated[Path, typer.Argument(help="A YAML config file (see `llmrouter schema`).")]
RouterOpt = Annotated[
    str | None, typer.Option("--router", "-r", help="Router to use (default: the config's).")
]
TaskOpt = Annotated[str | None, typer.Option("--task", "-t", help="Task of the request.")]


def _load(config: Path) -> Any:
    from llmrouter.config import load_config

    try:
        return load_config(config).build()
    except ConfigurationError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None


def check_command(config: ConfigArg) -> None:
    """Validate a config and build its models and routers without calling any model."""
    built = _load(config)
    table = Table(title=f"{config}: valid")
    for column in ("router", "type", "candidates", "default"):
        table.add_column(column, overflow="fold")
    for name, router in built.routers.items():
        table.add_row(
            name,
            type(router).__name__,
            ", ".join(s.name for s in router.models),
            "yes" if name == built.default else "",
        )
    console = make_console()
    console.print(table)
    console.print(f"{len(built.models)} models, {len(built.routers)} routers; no model was called")


def schema_command(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of config files (for editors and CI validation)."""
    from llmrouter.config import config_schema

    text = json.dumps(config_schema(), indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        make_console().print(f"wrote {out}")


def run_command(
    config: ConfigArg,
    prompt: Annotated[str, typer.Argument(help="The prompt ('-' reads it from stdin).")],
    router: RouterOpt = None,
    task: TaskOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the answer and its route as one JSON object.")
    ] = False,
    stream: Annotated[bool, typer.Option(help="Print the answer as it arrives.")] = False,
) -> None:
    """Route one prompt and print the answer (stdout) and its route (stderr)."""
    built = _load(config)
    chosen = _pick(built, router)
    text = sys.stdin.read() if prompt == "-" else prompt
    message = _ask(chosen, [HumanMessage(text)], task, stream=stream and not as_json)
    if as_json:
        typer.echo(json.dumps({"content": message.content, "route": _route(message)}))
        return
    if not stream:
        typer.echo(message.text)
    _print_route(message, make_console(stderr=True))


def chat_command(config: ConfigArg, router: RouterOpt = None, task: TaskOpt = None) -> None:
    """Chat with a router; each answer shows the model that gave it and why.

    Type /task NAME to set the task (/task alone clears it), /reset to forget
    the conversation, /exit (or Ctrl-D) to leave.
    """
    built = _load(config)
    chosen = _pick(built, router)
    console = make_console()
    console.print(
        f"[bold]{chosen.router_name}[/bold] over {', '.join(s.name for s in chosen.models)}. "
        "/task NAME, /reset, /exit"
    )
    history: list[BaseMessage] = []
    spent = 0.0
    while True:
        try:
            line = console.input("[bold cyan]you>[/bold cyan] ").strip()
        except EOFError:
            break
        if not line:
            continue
        if line in ("/exit", "/quit"):
            break
        if line == "/reset":
            history.clear()
            console.print("(conversation cleared)")
            continue
        if line.split()[0] == "/task":
            task = line.split(maxsplit=1)[1] if " " in line else None
            console.print(f"(task: {task or 'none: the router decides'})")
            continue
        history.append(HumanMessage(line))
        try:
            answer = _ask(chosen, history, task, stream=True, exit_on_error=False)
        except LLMRouterError as exc:
            history.pop()
            console.print(f"[red]{type(exc).__name__}:[/red] {escape(str(exc))}", highlight=False)
            continue
        history.append(AIMessage(answer.text))
        spent += _cost(answer)[0]
        _print_route(answer, console)
    console.print(f"session cost: ${spent:.6f}")


def list_config_models(config: Path) -> None:
    """Print a table of the config's models: tasks, prices, context window, breaker state
    (``llmrouter models list CONFIG``)."""
    built = _load(config)
    health: dict[str, str] = {}
    for router in built.routers.values():
        for name, state in router.health().items():
            if state.get("state", "closed") != "closed" or name not in health:
                health[name] = str(state.get("state", "closed"))
    table = Table(title=f"{len(built.models)} models in {config}")
    for column in (
        "model",
        "backend",
        "tasks",
        "modality",
        "in $/M",
        "out $/M",
        "context",
        "breaker",
    ):
        table.add_column(column, overflow="fold")
    for key, spec in built.models.items():
        model = spec.model
        backend = (
            type(model).__name__ if not callable(model) or hasattr(model, "invoke") else "lazy"
        )
        table.add_row(
            key,
            backend,
            ", ".join(sorted(spec.tasks)) or "any",
            spec.modality,
            f"{spec.input_cost:g}",
            f"{spec.output_cost:g}",
            str(spec.context_window or "?"),
            health.get(spec.name, "-"),
        )
    make_console().print(table)


# ------------------------------------------------------------ helpers


def _pick(built: Any, router: str | None) -> Any:
    try:
        return built.router(router)
    except ConfigurationError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None


def _ask(
    router: Any,
    messages: list[BaseMessage],
    task: str | None,
    *,
    stream: bool,
    exit_on_error: bool = True,
) -> AIMessage:
    kwargs = {"task": task} if task else {}
    try:
        if not stream:
            answer: AIMessage = router.invoke(messages, **kwargs)
            return answer
        full: AIMessageChunk | None = None
        for chunk in router.stream(messages, **kwargs):
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
            full = chunk if full is None else full + chunk
        sys.stdout.write("\n")
        return AIMessage(
            content=full.content if full else "",
            response_metadata=full.response_metadata if full else {},
            usage_metadata=full.usage_metadata if full else None,
        )
    except LLMRouterError as exc:
        if not exit_on_error:
            raise
        raise fail(f"{type(exc).__name__}: {exc}", EXIT_CALL) from None


def _route(message: BaseMessage) -> dict[str, Any]:
    route: dict[str, Any] = message.response_metadata.get("route") or {}
    return route


def _cost(message: BaseMessage) -> tuple[float, str]:
    """What the answer cost (what a budget is charged) and how that is known."""
    route = _route(message)
    return RouteRecord.model_validate(route).total_cost() if route else (0.0, "usage")


def _describe_cost(usd: float, source: str) -> str:
    return f"${usd:.6f}" if source == "usage" else f"${usd:.6f} ({source})"


def _print_route(message: BaseMessage, console: Console) -> None:
    route = _route(message)
    if not route:
        return
    records = route_chain(route)  # a router answering for a router: follow it down
    chain = [str(record.get("model")) for record in records]
    failed = [
        f"{a.get('model')} ({a.get('error_type')})"
        for record in records
        for a in record.get("attempts") or []
        if not a.get("ok")
    ]
    usage = route.get("usage") or {}
    parts = [
        "model " + " -> ".join(chain),
        f"reason: {route.get('reason')}",
        f"{(route.get('latency_s') or 0) * 1000:.0f} ms",
        f"{usage.get('input_tokens', '?')}/{usage.get('output_tokens', '?')} tokens",
        _describe_cost(*_cost(message)),
    ]
    if failed:
        parts.append("failed first: " + ", ".join(failed))
    console.print("[dim]-> " + escape(" | ".join(parts)) + "[/dim]", highlight=False)


def serve_command(
    config: ConfigArg,
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default: the config's, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: the config's, 8080).")] = None,
    log: Annotated[
        bool, typer.Option(help="Log each request's route record as a JSON line on stderr.")
    ] = True,
) -> None:
    """Serve the config's routers as an OpenAI-compatible API (needs the serve extra)."""
    built = _load(config)
    try:
        import uvicorn

        from llmrouter.models import use_aiohttp
        from llmrouter.serve import create_app
    except ImportError as exc:
        message = f"{exc}; install the extra: pip install 'llmrouter[serve]'"
        raise fail(message, EXIT_CONFIG) from None
    settings = built.serve.model_copy(
        update={k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    )
    console = make_console(stderr=True)
    if not settings.keys and settings.host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            f"[yellow]warning:[/yellow] listening on {settings.host} without API keys: anyone "
            "who can reach it can spend your budget; add serve.keys to the config"
        )
    if log:
        import logging

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        request_log = logging.getLogger("llmrouter.serve")
        request_log.addHandler(handler)
        request_log.setLevel(logging.INFO)
    use_aiohttp()  # the server's process: C HTTP parsing for every model call
    app = create_app(built.routers, built.models, settings, state=built.state)
    console.print(
        f"serving {', '.join(built.routers)} on http://{settings.host}:{settings.port}/v1 "
        f"({len(settings.keys)} API keys)"
    )
    # uvicorn drains on SIGTERM, then re-raises it to the handler it found; a no-op one
    # makes a drained stop exit 0 (as orchestrators expect) instead of dying by signal
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        log_level="warning",
    )
