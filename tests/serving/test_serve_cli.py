"""dltrain serve's command line without a server: start-up stays light, and the refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, invoke

PROBE = """
import json, sys
sys.argv = ["dltrain", *json.loads(sys.argv[1])]
from dltrain.cli import main
try:
    main()
except SystemExit:
    pass
print("LOADED=" + json.dumps(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"]])
def test_help_loads_neither_the_server_nor_tensorflow(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED="))
    loaded = set(json.loads(line.removeprefix("LOADED=")))
    assert loaded & {"uvicorn", "starlette", "anyio", "tensorflow", "keras"} == set()
    if args == ["serve", "--help"]:
        for flag in ("--host", "--port", "--max-body", "--run"):
            assert flag in done.stdout


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
