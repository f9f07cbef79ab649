"""The HTTP face of a :class:`Service`: a Starlette ASGI app, run by uvicorn.

Endpoints: ``GET /health``, ``GET /metadata``, ``POST /predict`` (a JSON batch). Every error is
a JSON document ``{"error": {"kind": …, "message": …}}``: 4xx for the request's faults (not
JSON, too large, missing column, wrong type), 500 for ours, never with a traceback. A request
never stops the server; SIGTERM does, after the requests in flight are answered.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dltrain.errors import DltrainError
from dltrain.serving.service import Service

log = logging.getLogger("dltrain.serve")
GRACEFUL_SECONDS = 30  # how long SIGTERM waits for requests in flight before closing them


class RequestError(Exception):
    """A request the server refuses with a 4xx status, before the model sees it."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def error_response(status: int, kind: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": {"kind": kind, "message": message}}, status, headers=headers)


async def read_json(request: Request, limit: int) -> Any:
    """The request's body parsed as JSON, refused above ``limit`` bytes without reading on.

    Raises:
        RequestError: 413 too large; 400 not UTF-8 JSON (NaN and Infinity are not JSON).
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise _too_large(len(body), limit)
    try:
        return json.loads(bytes(body).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(
            400,
            "not json",
            f"The request body is not valid UTF-8 JSON ({exc}). Send a JSON batch with "
            f"Content-Type: application/json; GET /metadata shows the form it takes.",
        ) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _too_large(size: int, limit: int) -> RequestError:
    return RequestError(
        413,
        "too large",
        f"The request body holds {size:,} bytes or more, above the server's limit of "
        f"{limit:,} (dltrain serve --max-body). Send the examples in smaller batches, or "
        f"restart the server with a larger --max-body.",
    )


@dataclass
class Handlers:
    service: Service

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "run": self.service.run.run_dir.name})

    async def metadata(self, request: Request) -> Response:
        return JSONResponse(self.service.metadata())

    async def predict(self, request: Request) -> Response:
        started = time.perf_counter()
        body = await read_json(request, self.service.settings.max_body)
        answer = await run_in_threadpool(self.service.predict, body)
        answer["seconds"] = round(time.perf_counter() - started, 6)
        return JSONResponse(answer)


def guarded(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` with every failure turned into a JSON error; a request never stops the server."""

    async def guard(request: Request) -> Response:
        try:
            return await handler(request)
        except RequestError as exc:
            close = {"Connection": "close"} if exc.status == 413 else {}
            return error_response(exc.status, exc.kind, exc.message, **close)
        except DltrainError as exc:
            return error_response(400 if exc.exit_code == 2 else 422, exc.kind, exc.message)
        except Exception as exc:  # a bug of ours: logged here, never sent to the client
            log.error("internal error on %s: %s: %s", request.url.path, type(exc).__name__, exc)
            log.debug("traceback", exc_info=True)
            return error_response(
                500,
                "internal error",
                "The server failed on this request; this is a bug in dltrain, not in your "
                "input. The server's log names it; the server goes on answering.",
            )

    return guard


async def _http_error(request: Request, exc: Exception) -> Response:
    """404 and 405 as JSON too, naming the endpoints there are."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return error_response(
        status,
        "not found" if status == 404 else "bad request",
        f"{request.method} {request.url.path}: {getattr(exc, 'detail', '')}. The endpoints are "
        f"GET /health, GET /metadata and POST /predict.",
    )


def make_app(service: Service) -> Starlette:
    """The ASGI app answering for ``service``."""
    handlers = Handlers(service)
    routes = [
        Route("/health", guarded(handlers.health), methods=["GET"]),
        Route("/metadata", guarded(handlers.metadata), methods=["GET"]),
        Route("/predict", guarded(handlers.predict), methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port), so the address is known
    before the server starts.

    Raises:
        OSError: the address is taken or not this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it a response (head, then body) waits ~40 ms on the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_forever(service: Service, sock: socket.socket) -> None:
    """Answer on ``sock`` until SIGTERM or Ctrl-C; requests in flight are finished first.

    Returns normally after SIGTERM (the command exits 0); Ctrl-C ends in KeyboardInterrupt.
    """
    import uvicorn

    config = uvicorn.Config(
        make_app(service),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the handler
    # it found; with this one in place that ends in a clean exit rather than death by signal.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
