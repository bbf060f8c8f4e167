"""`RedisExperimentStore`: A/B records, feedback and events in Redis, shared by replicas.

Keys of one experiment share a hash tag (``llmrouter:ab:{EXPERIMENT}:...``):
``records`` (a hash: request id -> JSON record), ``order`` (a list of request ids,
in the order they were stored), ``feedback`` and ``events`` (lists of JSON).
Adding a record is one Lua script (the request id must be new); adding feedback is
one script that stores it only if the experiment has that request.

Writes that find Redis down wait in the process and are sent, in order, when it
answers again (`pending`, `flush`): a record of a request a user was answered for
is not lost to a Redis restart. Reads raise `StateUnavailableError`; `ABRouter`
counts and warns, and goes on routing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from llmrouter.ab._store import (
    ExperimentEvent,
    ExperimentRecord,
    ExperimentStore,
    Feedback,
)
from llmrouter.errors import ExperimentError, UnknownRequestError
from llmrouter.state._outage import Outages
from llmrouter.state._pending import PendingWrites

if TYPE_CHECKING:
    import redis

__all__ = ["RedisExperimentStore"]

T = TypeVar("T")

# KEYS: records, order. ARGV: request id, record JSON
_ADD_RECORD = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""

# KEYS: records, feedback. ARGV: request id, feedback JSON
_ADD_FEEDBACK = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
"""


class RedisExperimentStore(ExperimentStore):
    """Experiment records in Redis: every replica of an `ABRouter` adds to one experiment.

    Examples:
        >>> from llmrouter.state import RedisState
        >>> store = RedisState("redis://127.0.0.1:6379/0").experiment_store()  # doctest: +SKIP
        >>> ABRouter(variants=..., experiment="e", store=store)  # doctest: +SKIP
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "llmrouter",
        where: str = "redis",
        outages: Outages | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.where = where
        self._outages = outages or Outages("redis", where)
        self._add_record = client.register_script(_ADD_RECORD)
        self._add_feedback = client.register_script(_ADD_FEEDBACK)
        self._pending = PendingWrites(self._call, "experiment records")

    def __repr__(self) -> str:
        return f"RedisExperimentStore({self.where!r})"

    def _key(self, experiment: str, what: str) -> str:
        return f"{self.namespace}:ab:{{{experiment}}}:{what}"

    def _call(self, action: Callable[[], T], force: bool = False) -> T:
        return self._outages.call(
            "experiments", action, "records wait in each process", force=force
        )

    # ----------------------------------------------------------------- writes

    def add_record(self, record: ExperimentRecord) -> None:
        keys = [self._key(record.experiment, "records"), self._key(record.experiment, "order")]
        args = [record.request_id, json.dumps(asdict(record))]

        def add() -> None:
            if not self._add_record(keys=keys, args=args):
                raise ExperimentError(
                    f"request {record.request_id!r} is already recorded in experiment "
                    f"{record.experiment!r}: request ids must be unique"
                )

        self._pending.write(add)

    def add_feedback(self, feedback: Feedback) -> None:
        self._pending.flush()  # the request may be among the records still waiting
        keys = [
            self._key(feedback.experiment, "records"),
            self._key(feedback.experiment, "feedback"),
        ]
        args = [feedback.request_id, json.dumps(asdict(feedback))]
        if not self._call(lambda: self._add_feedback(keys=keys, args=args)):
            raise UnknownRequestError(feedback.request_id, feedback.experiment, None)

    def add_event(self, event: ExperimentEvent) -> None:
        key, value = self._key(event.experiment, "events"), json.dumps(asdict(event), default=str)
        self._pending.write(lambda: self.client.rpush(key, value))

    def pending(self) -> int:
        """Writes waiting for Redis to answer again (sent before the next write)."""
        return len(self._pending)

    def flush(self) -> bool:
        """Send waiting writes now; True if none is left."""
        return self._pending.flush(force=True)

    def close(self) -> None:
        self._pending.flush()

    # ------------------------------------------------------------------ reads

    def records(self, experiment: str) -> list[ExperimentRecord]:
        self._pending.flush()
        order_key, records_key = self._key(experiment, "order"), self._key(experiment, "records")

        def read() -> list[Any]:
            ids = self.client.lrange(order_key, 0, -1)
            return list(self.client.hmget(records_key, ids)) if ids else []

        rows = [ExperimentRecord(**json.loads(raw)) for raw in self._call(read) if raw]
        return sorted(rows, key=lambda r: r.created_at)  # stable: stored order among ties

    def feedback(self, experiment: str) -> list[Feedback]:
        self._pending.flush()
        key = self._key(experiment, "feedback")
        raw: Any = self._call(lambda: self.client.lrange(key, 0, -1))
        return [Feedback(**json.loads(item)) for item in raw]

    def events(self, experiment: str) -> list[ExperimentEvent]:
        self._pending.flush()
        key = self._key(experiment, "events")
        raw: Any = self._call(lambda: self.client.lrange(key, 0, -1))
        return [ExperimentEvent(**json.loads(item)) for item in raw]
