"""Between route records and an A/B experiment's store: what is stored of a request,
and which stored request a feedback target names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage

from llmrouter.ab._store import ExperimentRecord
from llmrouter.errors import UnknownRequestError
from llmrouter.record import RouteRecord, route_chain
from llmrouter.spec import ModelSpec

__all__ = ["experiment_record", "request_id_of"]


def experiment_record(
    record: RouteRecord, experiment: str, variants: Mapping[str, ModelSpec]
) -> ExperimentRecord | None:
    """The experiment record of a finished request (``None``: it was assigned no variant).

    The variant failed if none of its tries (retries included) answered, even
    when the control then answered as the fallback.
    """
    variant = record.extra.get("variant")
    if not isinstance(variant, str) or variant not in variants:
        return None
    spec_name = variants[variant].name
    tries = [a for a in record.attempts if a.model == spec_name]
    error_type = error = None
    if not tries and not record.extra.get("abandoned"):
        error_type = "NotAttempted"
        error = "the variant could not take this request (e.g. tools bound that it cannot call)"
    elif tries and not any(a.ok for a in tries):
        error_type, error = tries[-1].error_type or "Error", tries[-1].error
    usage = record.usage
    return ExperimentRecord(
        request_id=record.request_id,
        experiment=experiment,
        variant=variant,
        model=record.model,
        key=record.extra.get("key"),
        latency_s=(
            record.latency_s
            if record.model is not None
            else sum(a.latency_s for a in record.attempts)
        ),
        input_tokens=usage.input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        total_tokens=usage.total_tokens if usage else None,
        cost_usd=record.cost_usd,
        error_type=error_type,
        error=error,
    )


def request_id_of(target: BaseMessage | RouteRecord | str, experiment: str) -> str:
    """The request id of ``experiment`` that ``target`` names.

    ``target`` is a request id, a `RouteRecord`, or a message a router returned;
    the experiment's router may be nested inside others (its record is then an
    ``inner`` one).

    Raises:
        UnknownRequestError: the message carries no route record.
        TypeError: ``target`` is none of these.
    """
    if isinstance(target, str):
        return target
    if isinstance(target, BaseMessage):
        raw = target.response_metadata.get("route")
        if not isinstance(raw, dict):
            raise UnknownRequestError(
                "(none)",
                experiment,
                hint="the message carries no route record: pass a message this router "
                "(or a router nesting it) returned, or a request id",
            )
        top: dict[str, Any] = raw
    elif isinstance(target, RouteRecord):
        top = target.model_dump()
    else:
        raise TypeError(
            f"record_feedback takes a message, a RouteRecord or a request id, got "
            f"{type(target).__name__}"
        )
    for route in route_chain(top):  # this router may be nested inside another
        if (route.get("extra") or {}).get("experiment") == experiment:
            return str(route["request_id"])
    return str(top["request_id"])  # not this experiment's: the store will say whose it is
