"""Running a service under uvicorn with a graceful, observable shutdown.

On the first SIGTERM (or SIGINT) the instance starts *draining*: it keeps
serving, but `/health` answers 503 "draining" so proxies polling it take the
instance out of rotation. After `shutdown_drain_seconds` uvicorn closes the
listener, lets in-flight requests finish (up to the rest of Docker's stop
timeout), runs the lifespan shutdown that closes the pools, and the process
exits 0. A second signal skips the rest of the drain; a third forces exit.

uvicorn's stock signal capture re-raises the signal once it has shut down,
which makes the process die *by* SIGTERM (exit status 143) instead of
exiting 0; `GracefulServer` keeps the graceful path and drops the re-raise.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from microstack_common.contract import STOP_TIMEOUT_SECONDS
from microstack_common.health import HealthStates
from microstack_common.logs import configure_logging
from microstack_common.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Lifecycle:
    """Whether the instance is draining, and the state /health last reported; shared by the server and `/health`."""

    def __init__(self) -> None:
        self.draining = False
        self.health_states = HealthStates()


class GracefulServer(uvicorn.Server):
    """uvicorn's server with a drain period before shutdown and exit status 0."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_seconds: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_seconds = drain_seconds
        self._drain_deadline: float | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in _HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.lifecycle.draining:
            self.lifecycle.draining = True
            self._drain_deadline = time.monotonic() + self.drain_seconds
            logger.info(
                "draining before shutdown",
                extra={"signal": signal.Signals(sig).name, "drain_seconds": self.drain_seconds},
            )
        elif not self.should_exit:
            self.should_exit = True
        else:
            self.force_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.lifecycle.draining:
            # The draining event is logged here, in the event loop, within a
            # tick of the signal, not from the signal handler, which may
            # interrupt the main thread while it holds the states' lock; and
            # whether or not a proxy probes /health in the meantime.
            self.lifecycle.health_states.observe("draining", "draining")
        should_exit = await super().on_tick(counter)
        drained = self._drain_deadline is not None and time.monotonic() >= self._drain_deadline
        return should_exit or drained


def serve(app: ASGIApp, settings: Settings, lifecycle: Lifecycle) -> None:
    """Run `app` until a signal has drained and stopped it; exit 1 if start-up failed."""
    grace = max(1.0, STOP_TIMEOUT_SECONDS - settings.shutdown_drain_seconds - 5)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(grace),
        lifespan="on",
    )
    server = GracefulServer(config, lifecycle, settings.shutdown_drain_seconds)
    server.run()
    if not server.started:
        logger.error("service did not start; see the errors above")
        sys.exit(1)
    logger.info("stopped")


def run_service(
    *,
    service_name: str,
    default_port: int,
    build_app: Callable[[Settings, Lifecycle], ASGIApp],
) -> None:
    """The whole of a service's `__main__`: settings, logs, app, serve.

    A configuration error is reported as one JSON log line and exit status 2,
    so `docker logs` says what to fix instead of showing a traceback; an
    error while building the app is one JSON line with the traceback in it,
    and exit status 1.
    """
    try:
        settings = Settings.from_env(service_name=service_name, default_port=default_port)
    except SettingsError as error:
        configure_logging(service_name, "unknown", "INFO")
        logger.critical("cannot start: %s", error)
        sys.exit(2)
    configure_logging(settings.service_name, settings.instance_name, settings.log_level)
    lifecycle = Lifecycle()
    try:
        app = build_app(settings, lifecycle)
    except Exception:
        # A bug, not a setting: its traceback goes into the one JSON log line
        # (field `exception`) rather than onto stderr as loose lines.
        logger.critical("cannot start: building the application failed", exc_info=True)
        sys.exit(1)
    serve(app, settings, lifecycle)
