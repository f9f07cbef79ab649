"""dltrain serve's command line without a server: start-up stays light, and the refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import invoke, modules_loaded_by


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"]])
def test_help_loads_neither_the_server_nor_tensorflow(args: list[str]) -> None:
    modules, stdout = modules_loaded_by(*args)
    loaded = {m.split(".")[0] for m in modules}
    assert loaded & {"uvicorn", "starlette", "anyio", "tensorflow", "keras"} == set()
    if args == ["serve", "--help"]:
        for flag in ("--host", "--port", "--max-body", "--run"):
            assert flag in stdout


def test_without_the_serving_extra_the_message_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("serve")
    assert code == 2
    assert "uvicorn" in err and "pip install 'dltrain[serve]'" in err
    assert "Traceback" not in err


def test_no_run_to_serve_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("serve", "--port", "0")
    assert code == 2 and "internal error" not in err
    assert err.strip()
