"""A real ``redis-server`` on 127.0.0.1 for tests: `start_redis_server`, `RedisServer`.

Started from the ``redis-server`` program (Debian's package of that name), on a
free port, with its data in a temporary folder and none of the system's
configuration. Writes are appended to a file synced on every write
(``appendfsync always``, unless ``fsync="everysec"``), so `RedisServer.restart`
keeps everything a client was told was written, as a production server
configured for durability would.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from llmrouter.testing._katan import _free_port

__all__ = ["RedisServer", "redis_server_program", "start_redis_server"]


def redis_server_program() -> str | None:
    """The path of ``redis-server``, or ``None`` if it is not installed."""
    return shutil.which("redis-server")


class RedisServer:
    """One running ``redis-server`` process (use `start_redis_server`)."""

    def __init__(self, program: str, workdir: Path, port: int, fsync: str = "always") -> None:
        self.program = program
        self.workdir = workdir
        self.port = port
        self.fsync = fsync
        """``appendfsync``: ``always`` (no acknowledged write lost) or ``everysec``."""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server (again, on the same port and data) and wait until it answers."""
        command = [
            self.program,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        if not self._wait_ready(timeout):
            self.stop()
            raise RuntimeError(f"redis-server did not start on port {self.port}:\n{self.log()}")

    def _wait_ready(self, timeout: float) -> bool:
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    return False
                with contextlib.suppress(redis.exceptions.RedisError):
                    if client.ping():
                        return True
                time.sleep(0.05)
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): no goodbye, as in a crash."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): it accepts connections but answers nothing,
        like a server stuck on a slow disk. `resume` thaws it."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a paused server (SIGCONT)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Kill the server and start it again on the same port and data."""
        self.kill()
        self.start()

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@contextlib.contextmanager
def start_redis_server(
    workdir: str | Path | None = None, *, fsync: str = "always"
) -> Iterator[RedisServer]:
    """Run ``redis-server`` on 127.0.0.1 and a free port; stop it on exit.

    ``fsync="always"`` syncs every write to disk before acknowledging it (a restart
    loses nothing acknowledged); ``"everysec"`` (Redis's own default for its
    append-only file) is faster and may lose the last second on a crash.

    Raises:
        RuntimeError: ``redis-server`` is not installed (``apt-get install redis-server``)
            or did not start.

    Examples:
        >>> from llmrouter.testing import start_redis_server
        >>> with start_redis_server() as server:  # doctest: +SKIP
        ...     server.url
        'redis://127.0.0.1:...'
    """
    program = redis_server_program()
    if program is None:
        raise RuntimeError(
            "redis-server is not installed: apt-get install redis-server (Debian, Ubuntu)"
        )
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="llmrouter-redis-"))
        if fsync not in ("always", "everysec"):
            raise ValueError(f"fsync must be 'always' or 'everysec', not {fsync!r}")
        server = RedisServer(program, Path(workdir), _free_port(), fsync)
        server.start()
        stack.callback(server.stop)
        yield server
