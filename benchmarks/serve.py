"""dltrain serve on the UCI Adult table: requests/s and p50/p99 latency over HTTP, against the
same rows predicted in-process.

How it measures:
  1. Prepare `recipes/adult_income.yaml` and train it --epochs (untimed; reused when
     benchmarks/work/serve/ already holds a finished run).
  2. Start `dltrain serve --port 0` on that run, a separate process, as a user runs it.
  3. Raw rows from adult.test (the recipe's test source) become JSON records, typed as the
     server's GET /metadata says (numbers as numbers, categories as text).
  4. For each (rows per request, concurrent clients): every client sends --requests requests of
     its own rows over one keep-alive connection (http.client, with TCP_NODELAY as urllib3
     and httpx set it); latency is each request's wall time at the client, throughput the
     requests answered over the whole wall time.
  5. In-process, in this script: the same bodies through serve's own Service.predict (JSON
     rows → predict's conversion → the model → rows; no HTTP), and the Keras model alone
     (predict_on_batch on the already converted features), one call per request, sequentially.

    .venv/bin/python benchmarks/serve.py                   # about 2 minutes on 2 cores
    .venv/bin/python benchmarks/serve.py --write-results   # also update RESULTS.md

Run it on a quiet machine: anything else using the CPUs shows up in the timings.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from results import write_section

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK = BENCH_DIR / "work" / "serve"  # git-ignored
RECIPE = REPO / "recipes" / "adult_income.yaml"
TEST_FILE = REPO.parent / "shared" / "data" / "adult" / "adult.test"
SECTION_TITLE = "## dltrain serve on the Adult table (HTTP vs in-process)"
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NO_COLOR": "1"}
SCENARIOS = ((1, 1), (1, 4), (32, 1), (32, 4))  # (rows per request, concurrent clients)


def dltrain(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dltrain", *args, "--recipe", str(RECIPE)],
        cwd=WORK,
        env=CHILD_ENV,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"dltrain {' '.join(args)} failed: {done.stderr}")


def trained_run(epochs: int) -> Path:
    runs = WORK / "runs" / "adult_income"
    finished = sorted(p for p in runs.glob("*") if (p / "model.keras").is_file())
    if finished:
        return finished[-1]
    WORK.mkdir(parents=True, exist_ok=True)
    dltrain("prepare")
    dltrain("train", "--epochs", str(epochs))
    return trained_run(epochs)


def start_server(run: Path) -> tuple[subprocess.Popen[str], str, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "dltrain", "serve", "--run", str(run), "--port", "0"],
        cwd=WORK,
        env=CHILD_ENV,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"http://(127\.0\.0\.1):(\d+)", line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, found.group(1), int(found.group(2))
    raise SystemExit(f"dltrain serve exited with {process.wait()}")


def request(host: str, port: int, method: str, path: str, body: Any = None) -> Any:
    connection = http.client.HTTPConnection(host, port, timeout=60)
    payload = None if body is None else json.dumps(body)
    connection.request(method, path, payload, {"Content-Type": "application/json"})
    answer = connection.getresponse()
    document = json.loads(answer.read())
    connection.close()
    return document


def raw_records(metadata: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """adult.test's first ``count`` rows as a client would send them."""
    columns = [c for c in metadata["input"]["columns"]]
    records = []
    for line in TEST_FILE.read_text().splitlines()[1:]:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < len(columns):
            continue
        record: dict[str, Any] = {}
        for column, cell in zip(columns, cells, strict=False):
            if column["type"] == "number":
                record[column["name"]] = float(cell) if cell not in ("", "?") else None
            else:
                record[column["name"]] = cell
        records.append(record)
        if len(records) == count:
            break
    return records


def latencies_summary(seconds: list[float], wall: float) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "requests_per_s": len(seconds) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def http_load(host: str, port: int, bodies: list[Any], clients: int) -> dict[str, float]:
    share = [bodies[i::clients] for i in range(clients)]

    def client(mine: list[Any]) -> list[float]:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        connection.connect()
        # http.client sends a request's head and body in two writes: without TCP_NODELAY (which
        # urllib3/requests and httpx set) Nagle holds the body for the server's delayed ACK,
        # ~40 ms per request that would be the client's, not the server's
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for body in mine:
            payload = json.dumps(body)
            started = time.perf_counter()
            connection.request("POST", "/predict", payload, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            data = answer.read()
            times.append(time.perf_counter() - started)
            if answer.status != 200:
                raise SystemExit(f"HTTP {answer.status}: {data[:300]!r}")
        connection.close()
        return times

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        times = [t for ts in pool.map(client, share) for t in ts]
    return latencies_summary(times, time.perf_counter() - started)


def in_process(run: Path, bodies: list[Any]) -> tuple[dict[str, float], dict[str, float]]:
    """serve's Service.predict on each body, and the Keras model alone on its features."""
    from dltrain.serving.batch import read_batch
    from dltrain.serving.service import ServeSettings, open_service

    service = open_service(ServeSettings(run))
    service.predict(bodies[0])  # the first call traces the model's predict function
    times = []
    started = time.perf_counter()
    for body in bodies:
        t = time.perf_counter()
        service.predict(json.loads(json.dumps(body)))
        times.append(time.perf_counter() - t)
    whole = latencies_summary(times, time.perf_counter() - started)
    chunks = [read_batch(body, service.model_input)[0] for body in bodies]
    times = []
    started = time.perf_counter()
    for chunk in chunks:
        t = time.perf_counter()
        service.predictor.outputs(chunk)
        times.append(time.perf_counter() - t)
    return whole, latencies_summary(times, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (untimed)")
    parser.add_argument("--requests", type=int, default=200, help="requests per scenario")
    parser.add_argument("--write-results", action="store_true", help="update RESULTS.md")
    args = parser.parse_args()
    run = trained_run(args.epochs)
    process, host, port = start_server(run)
    try:
        metadata = request(host, port, "GET", "/metadata")
        records = raw_records(metadata, 2000)
        request(host, port, "POST", "/predict", records[:32])  # warm-up: traces the model
        load_before = os.getloadavg()[0]
        results = []
        for rows, clients in SCENARIOS:
            bodies = [
                records[(i * rows) % (len(records) - rows) :][:rows] for i in range(args.requests)
            ]
            over_http = http_load(host, port, bodies, clients)
            results.append((rows, clients, over_http, bodies))
            print(f"{rows} rows × {clients} clients: {over_http}", file=sys.stderr)
    finally:
        process.terminate()
        code = process.wait(timeout=60)
    baselines = {}
    for rows in sorted({r for r, _, _, _ in results}):
        bodies = next(b for r, _, _, b in results if r == rows)
        baselines[rows] = in_process(run, bodies)
    section = report(run, results, baselines, load_before, code, args)
    print(section)
    if args.write_results:
        write_section(section, SECTION_TITLE)


def report(
    run: Path,
    results: list[Any],
    baselines: dict[int, Any],
    load_before: float,
    code: int,
    args: argparse.Namespace,
) -> str:
    import tensorflow as tf

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"{SECTION_TITLE}",
        "",
        f"Measured {when} with `.venv/bin/python benchmarks/serve.py --requests {args.requests}"
        f"{' --write-results' if args.write_results else ''}` (from the repository root).",
        "",
        f"- **Machine:** {os.cpu_count()} CPU(s), {platform.machine()}; TensorFlow "
        f"{tf.__version__}, Python {platform.python_version()}. Load average (1 min) "
        f"{load_before:.2f} before the HTTP runs, {os.getloadavg()[0]:.2f} at the end.",
        f"- **Model:** `recipes/adult_income.yaml` (MLP 256-128 on 14 raw columns, numeric "
        f"embeddings) trained {args.epochs} epoch(s), run {run.name}; rows from adult.test as "
        f"JSON records. The server: one `dltrain serve` process (uvicorn, one worker), "
        f"SIGTERM at the end, exit code {code}.",
        f"- **Each line:** {args.requests} requests; 'in-process' is serve's Service.predict "
        f"(JSON rows → predict's conversion → model → rows) called in a loop, 'Keras alone' "
        f"is predict_on_batch on the already converted features.",
        "",
        "| rows/request | clients | path | requests/s | rows/s | p50 ms | p99 ms |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]

    def line(rows: int, clients: object, path: str, summary: dict[str, float]) -> str:
        return (
            f"| {rows} | {clients} | {path} | {summary['requests_per_s']:,.0f} | "
            f"{summary['requests_per_s'] * rows:,.0f} | {summary['p50_ms']:.2f} | "
            f"{summary['p99_ms']:.2f} |"
        )

    for rows, clients, over_http, _ in results:
        lines.append(line(rows, clients, "HTTP", over_http))
    for rows, (whole, keras_only) in baselines.items():
        lines.append(line(rows, "—", "in-process (Service.predict)", whole))
        lines.append(line(rows, "—", "Keras alone", keras_only))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
