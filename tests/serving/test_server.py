"""`dltrain serve` as a client meets it: a real server process on 127.0.0.1, real HTTP requests.

The answers are checked against `dltrain predict` on the same rows (one prediction path), bad
requests against their 4xx JSON errors, and the server against a concurrent load and SIGTERM.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_dltrain, synthetic_images
from tests.serving.conftest import Server, serving

pytestmark = pytest.mark.slow


def house_rows(project: Path, count: int, seed: int) -> list[dict[str, Any]]:
    """Raw rows as a client sends them: numbers as JSON numbers, a gap as null."""
    from tests.cli.eval_projects import write_houses

    path = project.parent / f"rows-{seed}-{count}.csv"
    write_houses(path, count, seed=seed)
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    return [
        {
            "house_id": r["house_id"],
            "rooms": float(r["rooms"]) if r["rooms"] else None,
            "area": float(r["area"]),
            "district": r["district"],
        }
        for r in rows
    ]


def test_health_and_metadata_describe_the_run(house_server: Server, project: Path) -> None:
    status, health = house_server.request("GET", "/health")
    assert status == 200 and health["status"] == "ok"
    run = sorted((project / "runs" / "house").iterdir())[-1]
    status, meta = house_server.request("GET", "/metadata")
    assert status == 200
    assert meta["run"] == run.name == health["run"] and meta["task"] == "regression"
    columns = {c["name"]: c for c in meta["input"]["columns"]}
    assert columns["rooms"]["type"] == "number" and columns["area"]["type"] == "number"
    assert columns["district"]["categories"] == ["east", "north", "south"]
    assert columns["house_id"]["role"] == "identifier"
    assert meta["output"]["fields"] == ["row", "prediction"]
    assert meta["limits"]["max_body_bytes"] == 200000


def test_predictions_are_predicts_own_and_both_forms_agree(
    house_server: Server, project: Path, tmp_path: Path
) -> None:
    rows = house_rows(project, 12, seed=9)
    rows[1]["district"] = "atlantis"  # unseen: the out-of-vocabulary bucket, reported
    rows[2]["note"] = "a column the model does not take passes through"
    status, answer = house_server.request("POST", "/predict", rows)
    assert status == 200, answer
    assert answer["num_examples"] == 12
    got = answer["predictions"]
    assert [p["house_id"] for p in got] == [r["house_id"] for r in rows]
    assert got[2]["note"] == rows[2]["note"] and got[0]["note"] is None
    assert {"column": "district", "missing": 0, "unseen": 1} in answer["inputs"]
    # the same rows through `dltrain predict`, from a CSV file
    source = tmp_path / "rows.csv"
    with source.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["house_id", "rooms", "area", "district"])
        writer.writeheader()
        writer.writerows(
            {k: ("" if r[k] is None else r[k]) for k in writer.fieldnames} for r in rows
        )
    done = run_dltrain("predict", "-i", str(source), "-o", str(tmp_path / "p.jsonl"), cwd=project)
    assert done.returncode == 0, done.stderr
    expected = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(
        [p["prediction"] for p in got], [e["prediction"] for e in expected], rtol=1e-6
    )
    assert [set(p) - {"note"} for p in got] == [set(e) for e in expected]
    columns = {name: [r.get(name) for r in rows] for name in ("rooms", "area", "district")}
    status, by_columns = house_server.request("POST", "/predict", {"columns": columns})
    assert status == 200, by_columns
    assert [p["prediction"] for p in by_columns["predictions"]] == [p["prediction"] for p in got]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ([{"rooms": 3, "district": "north"}], 400, "lacks the column(s) area"),
        ([{"rooms": "three", "area": 50, "district": "north"}], 400, "'rooms', example 0"),
        ([{"rooms": 3, "area": 50, "district": ["north"]}], 400, "takes text"),
        ({"rows": []}, 400, "expected a JSON list of records"),
        ([], 400, "holds no examples"),
        (b"{not json", 400, "not valid UTF-8 JSON"),
        (b'[{"rooms": NaN, "area": 1, "district": "x"}]', 400, "NaN is not a JSON number"),
        (b"[" + b'{"rooms": 1, "area": 1, "district": "x"},' * 10_000 + b"{}]", 413, "--max-body"),
    ],
)
def test_bad_requests_get_a_json_4xx_and_the_server_goes_on(
    house_server: Server, body: Any, status: int, needle: str
) -> None:
    raw = body if isinstance(body, bytes) else None
    got, answer = house_server.request("POST", "/predict", None if raw else body, raw=raw)
    assert got == status, answer
    assert needle in answer["error"]["message"]
    assert "Traceback" not in json.dumps(answer)
    assert house_server.request("GET", "/health")[0] == 200
    assert house_server.process.poll() is None


def test_unknown_paths_and_methods_answer_json(house_server: Server) -> None:
    status, answer = house_server.request("GET", "/nowhere")
    assert status == 404 and "POST /predict" in answer["error"]["message"]
    status, answer = house_server.request("GET", "/predict")
    assert status == 405 and answer["error"]["kind"] == "bad request"


def test_concurrent_clients_all_get_their_own_answers(house_server: Server, project: Path) -> None:
    rows = house_rows(project, 160, seed=11)
    status, whole = house_server.request("POST", "/predict", rows)
    assert status == 200
    expected = [p["prediction"] for p in whole["predictions"]]

    def client(worker: int) -> list[tuple[int, bool]]:
        results = []
        for i in range(20):
            start = (worker * 20 + i) % 150
            if i % 5 == 4:  # a bad request among the good ones
                got, _ = house_server.request("POST", "/predict", raw=b"{broken")
                results.append((got, got == 400))
                continue
            got, answer = house_server.request("POST", "/predict", rows[start : start + 10])
            values = [p["prediction"] for p in answer["predictions"]]
            same = np.allclose(values, expected[start : start + 10], rtol=1e-5)
            results.append((got, same))
        return results

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = [r for rs in pool.map(client, range(8)) for r in rs]
    assert len(answers) == 160
    assert all(correct for _, correct in answers), answers
    assert sum(status == 200 for status, _ in answers) == 128
    assert house_server.request("GET", "/health")[0] == 200
    assert not any("internal error" in line for line in house_server.stderr)


def test_images_as_instances_and_sigterm_finishes_the_request_in_flight(project: Path) -> None:
    x, _ = synthetic_images(60, num_classes=2, seed=8)
    instances = x.tolist()
    with serving(project, "--recipe", "bin.yaml", "--max-body", "50000000") as server:
        status, meta = server.request("GET", "/metadata")
        assert meta["input"] == {
            "kind": "image",
            "format": "instances or images (base64 files)",
            "shape": [12, 12, 1],
            "dtype": "uint8",
        }
        assert meta["classes"] == ["ham", "spam"]
        status, answer = server.request("POST", "/predict", {"instances": instances[:3]})
        assert status == 200, answer
        first = answer["predictions"][0]
        assert set(first) == {"row", "prediction", "score", "probability", "probabilities"}
        assert first["score"] == first["probabilities"]["spam"]
        # the same images as PNG files, base64-encoded: decoded as prepare decodes, same answers
        encoded = []
        for image in x[:3]:
            png = io.BytesIO()
            Image.fromarray(image).save(png, format="PNG")
            encoded.append(base64.b64encode(png.getvalue()).decode())
        status, from_files = server.request("POST", "/predict", {"images": encoded})
        assert status == 200, from_files
        assert from_files["predictions"] == answer["predictions"]
        status, answer = server.request("POST", "/predict", {"instances": [[1, 2]]})
        assert status == 400 and "shape" in answer["error"]["message"]
        # SIGTERM while a request is in flight (its head read, half its body still to come):
        # the server waits for it, answers it, then exits 0
        body = json.dumps({"instances": instances[:50]}).encode()
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=60) as client:
            head = f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            client.sendall(head.encode() + b"Content-Type: application/json\r\n\r\n")
            client.sendall(body[: len(body) // 2])
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert server.process.poll() is None  # still waiting for the request
            client.sendall(body[len(body) // 2 :])
            answer_bytes = b"".join(iter(lambda: client.recv(65536), b""))
        assert server.process.wait(timeout=60) == 0
        status_line, _, rest = answer_bytes.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 200"), answer_bytes[:300]
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["num_examples"] == 50
    assert any("Stopped serving" in line for line in server.stderr)


def test_a_taken_port_is_refused_before_tensorflow_loads(
    house_server: Server, project: Path
) -> None:
    port = house_server.url.rsplit(":", 1)[1]
    done = run_dltrain("serve", "--port", port, cwd=project, timeout=120)
    assert done.returncode == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "Loading TensorFlow" not in done.stderr and "Traceback" not in done.stderr
