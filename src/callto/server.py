"""Running the server process: HTTP and HTTPS listeners (uvicorn) around the app, until a signal.

Start-up is checked before anything is printed: the data folder, the database, the ports (see
:mod:`callto.ops.checks`); a failure is one line naming the setting to change and a distinct exit code.
"callto is running at" is printed only once every listener (HTTP, HTTPS, SIP) is bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Callable, Iterator

import uvicorn

from callto.app import Services, build_features, build_services, create_app
from callto.config import Settings
from callto.ops import checks, logs
from callto.ops.backup import hold_server_lock
from callto.ops.checks import OpsError
from callto.ops.metrics import Metrics
from callto.ops.watch import GenerationWatch
from callto.tls import ensure_certificate, fingerprint

log = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to us: two listeners share one orderly shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _display_host(bind: str) -> str:
    return "localhost" if bind in ("0.0.0.0", "::", "") else bind


def announce(services: Services) -> None:
    s = services.settings
    host = _display_host(s.bind)
    lines = [
        f"data: {s.data_dir}  database: {services.db.url.render_as_string(hide_password=True)}",
        f"callto is running at http://{host}:{s.http_port}/  (HTTPS: https://{host}:{s.https_port}/)",
        f"API docs: http://{host}:{s.http_port}/api/docs",
    ]
    if services.first_admin_password and s.admin_password:
        lines.append("first start: log in as 'admin' with the password set in CALLTO_ADMIN_PASSWORD")
    elif services.first_admin_password:
        lines.append(
            f"first start: log in as 'admin' with password '{services.first_admin_password}'"
            " (shown only this once; change it in the admin pages)"
        )
    print("\n".join(lines), flush=True)


def preflight(settings: Settings) -> None:
    """Everything that can be checked before building the server (OpsError on the first problem)."""
    checks.check_data_dir(settings, create=True)
    checks.database_initialized(settings)  # reachable (a new SQLite file or empty database is made next)
    checks.check_ports(settings)


class _OneLineFailures(logging.Filter):
    """Without --debug, uvicorn's start-up failures (a component that cannot start) are one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            failure = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({failure.__class__.__name__}: {failure})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


async def serve_async(settings: Settings) -> None:
    preflight(settings)
    lock = hold_server_lock(settings.data_dir)  # `callto restore` sees a running server by it
    services = build_services(settings)
    services.components.append(GenerationWatch(services.directory.generation, services.bus))
    features = build_features(services)
    metrics = Metrics(services, features.switch)
    metrics.install_log_counter()
    app = logs.AccessLog(metrics.wrap(create_app(services, features)), observers=[metrics.observe_request])
    cert, key = ensure_certificate(settings.tls_dir, [settings.public_host] if settings.public_host else None)
    http = _QuietServer(
        uvicorn.Config(app, host=settings.bind, port=settings.http_port, lifespan="on", log_level=settings.log_level,
                       log_config=None, ws_ping_interval=20.0, ws_ping_timeout=20.0, server_header=False)
    )
    https = _QuietServer(
        uvicorn.Config(app, host=settings.bind, port=settings.https_port, lifespan="off",
                       log_level=settings.log_level, log_config=None, ws_ping_interval=20.0, ws_ping_timeout=20.0,
                       server_header=False, ssl_certfile=str(cert), ssl_keyfile=str(key))
    )
    loop = asyncio.get_running_loop()

    def shutdown() -> None:
        http.should_exit = True
        https.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown)
    log.info("TLS certificate %s (SHA-256 %s)", cert, fingerprint(cert))
    # HTTP owns the lifespan (starts the switch and friends); HTTPS starts once HTTP is up.
    http_task = asyncio.create_task(http.serve())
    while not http.started and not http_task.done():
        await asyncio.sleep(0.02)
    tasks = [http_task]
    if http.started:
        https_task = asyncio.create_task(https.serve())
        tasks.append(https_task)
        while not https.started and not https_task.done():
            await asyncio.sleep(0.02)
        if https.started:
            announce(services)
        else:
            shutdown()  # HTTPS could not start: do not serve half a server
    if os.environ.get("CALLTO_GC_FREEZE", "1") != "0":
        # Everything built by now (modules, the app and its routes, the switch) lives as long as the
        # process: take it out of the garbage collector's reach, so that a full collection does not walk
        # ~150,000 objects in the middle of a burst of requests (see bench/README.md, click-to-call).
        gc.collect()
        gc.freeze()
    await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
    shutdown()
    await asyncio.gather(*tasks, return_exceptions=True)
    services.directory.generation.close()
    services.db.dispose()
    lock.close()
    for task in tasks:
        failure = task.exception() if not task.cancelled() else None
        if isinstance(failure, SystemExit):
            # uvicorn exits this way when it cannot bind; say which port instead of a traceback.
            setting = "CALLTO_HTTP_PORT" if task is http_task else "CALLTO_HTTPS_PORT"
            which = settings.http_port if task is http_task else settings.https_port
            raise OpsError(
                f"could not listen on {settings.bind}:{which} (in use?); change {setting}", checks.EXIT_PORT
            )
        if failure is not None:
            raise failure
    if not http.started:
        # The lifespan failed: a component (the SIP switch, media) could not start; uvicorn said why.
        raise OpsError(
            "the server could not start (see the line above); if the SIP port is taken change CALLTO_SIP_PORT",
            checks.EXIT_ERROR,
        )


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop to run on: asyncio's own (the default), or uvloop with ``CALLTO_EVENT_LOOP=uvloop``
    (``auto``: uvloop when installed).

    uvloop did not win clearly here (bench/README.md): about the same server CPU per click-to-call as
    asyncio in repeated alternating runs, and a slightly longer tail for the 1,000-session event fan-out;
    so it stays a choice rather than the default.
    """
    choice = os.environ.get("CALLTO_EVENT_LOOP", "asyncio").strip().lower()
    if choice not in ("uvloop", "auto"):
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("callto: CALLTO_EVENT_LOOP=uvloop, but uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def serve(settings: Settings, *, debug: bool = False) -> None:
    """Run until a signal; a start-up problem raises OpsError (the CLI prints it and exits with its code)."""
    logs.configure(settings.log_level, settings.log_format, settings.log_levels)
    if not debug:
        logging.getLogger("uvicorn.error").addFilter(_OneLineFailures())
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve_async(settings))
