"""A real Celery worker process for tests: `start_celery_worker`, `CeleryWorker`.

The worker runs ``celery -A llmrouter.integrations.celery worker`` in its own
process group (so `CeleryWorker.kill` takes its pool processes with it, as when
a machine is lost) against the broker you give, typically a `start_redis_server`.
Proxy variables are left out of its environment: the servers it calls in tests
are on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["CeleryWorker", "start_celery_worker"]


class CeleryWorker:
    """One ``celery worker`` process and its pool (use `start_celery_worker`)."""

    def __init__(
        self,
        broker: str,
        name: str,
        workdir: Path,
        *,
        concurrency: int = 2,
        pool: str = "prefork",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.broker = broker
        self.name = f"{name}@localhost"
        """The worker's node name, as `llmrouter.integrations.celery.check_workers` lists it."""
        self.workdir = workdir
        self.concurrency = concurrency
        self.pool = pool
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def logfile(self) -> Path:
        return self.workdir / f"{self.name.split('@')[0]}.log"

    def start(self, timeout: float = 90.0) -> None:
        """Start the worker and wait until it answers a ping."""
        command = [
            sys.executable, "-m", "celery",
            "-A", "llmrouter.integrations.celery", "worker",
            "--hostname", self.name,
            "--pool", self.pool,
            "--concurrency", str(self.concurrency),
            "--loglevel", "INFO",
            "--logfile", str(self.logfile),
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env |= {"CELERY_BROKER_URL": self.broker, "PYTHONUNBUFFERED": "1"} | self.env
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not self._wait_ready(timeout):
            log = self.log()
            self.kill()
            raise RuntimeError(f"the Celery worker {self.name} did not start:\n{log}")

    def _wait_ready(self, timeout: float) -> bool:
        from llmrouter.integrations.celery import create_app

        app = create_app(self.broker)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    return False
                if app.control.ping(destination=[self.name], timeout=0.5):
                    return True
            return False
        finally:
            app.close()

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown (SIGTERM: finish the tasks in hand), then SIGKILL after ``timeout``."""
        process = self.process
        if process is None or process.poll() is not None:
            self.process = None
            return
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as in a crash."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def log(self) -> str:
        """The end of the worker's log."""
        path = self.logfile
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@contextlib.contextmanager
def start_celery_worker(
    broker: str,
    *,
    name: str = "worker",
    concurrency: int = 2,
    pool: str = "prefork",
    env: Mapping[str, str] | None = None,
    workdir: str | Path | None = None,
) -> Iterator[CeleryWorker]:
    """Run a Celery worker of `llmrouter.integrations.celery` on ``broker``; stop it on exit.

    ``env`` adds to the worker's environment (e.g. ``LLMROUTER_CELERY_VISIBILITY_TIMEOUT``
    for a quick redelivery after `CeleryWorker.kill`, or ``CELERY_RESULT_BACKEND``).
    Needs ``llmrouter[celery]``.

    Examples:
        >>> from llmrouter.testing import start_celery_worker, start_redis_server
        >>> with start_redis_server() as redis:  # doctest: +SKIP
        ...     with start_celery_worker(redis.url) as worker:
        ...         worker.name
        'worker@localhost'
    """
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="llmrouter-celery-"))
        worker = CeleryWorker(
            broker, name, Path(workdir), concurrency=concurrency, pool=pool, env=env
        )
        worker.start()
        stack.callback(worker.stop)
        yield worker
