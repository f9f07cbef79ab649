"""The HTTP layer's own pieces, without a server process: errors of ours, and the socket."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from dltrain.serving.app import bind


def test_a_failing_handler_answers_500_without_its_traceback() -> None:
    from starlette.requests import Request

    from dltrain.serving.app import guarded

    async def broken(request: Request) -> Any:
        raise KeyError("secret internal detail")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [],
        "query_string": b"",
    }
    response = asyncio.run(guarded(broken)(Request(scope)))
    assert response.status_code == 500
    body = bytes(response.body).decode()
    assert "internal error" in body and "secret internal detail" not in body
    assert "Traceback" not in body


def test_the_listening_socket_is_tcp_so_asyncio_turns_nagle_off() -> None:
    # asyncio sets TCP_NODELAY on accepted sockets only when their proto says TCP; with 0 every
    # response (head, then body) waited ~40 ms for the client's delayed ACK (benchmarks/serve.py)
    with bind("127.0.0.1", 0) as listening:
        assert listening.proto == socket.IPPROTO_TCP
        client = socket.create_connection(listening.getsockname())
        accepted, _ = listening.accept()
        with client, accepted:
            assert accepted.proto == socket.IPPROTO_TCP


def test_a_taken_port_is_an_os_error_naming_it() -> None:
    with bind("127.0.0.1", 0) as taken, pytest.raises(OSError):
        bind("127.0.0.1", taken.getsockname()[1])
