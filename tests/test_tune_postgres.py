"""Two `dltrain tune` processes share one study in a real PostgreSQL server.

The test starts a throwaway PostgreSQL cluster (initdb / pg_ctl, as the unprivileged `postgres`
user when run as root, since PostgreSQL refuses to run as root) on a free localhost port, runs two
tuners against it at the same time, and checks that they split the trials between them with no
trial run twice and no parameter set proposed twice. It is skipped when the PostgreSQL server
binaries are missing (.ci/run installs Debian's `postgresql` package).

The tuners are the real `dltrain tune` (CLI, study, sampling, heartbeats, trial processes that
report to PostgreSQL and ask the pruner); each trial's training is the TensorFlow-free stand-in of
tests/tuning/fake_trial.py, so six trials cost seconds. Real training is tested end to end in
tests/cli/test_tune.py.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RecipeWriter, run_dltrain
from tests.tuning.fake_trial import LAUNCHER

pytestmark = pytest.mark.slow


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database in a fresh PostgreSQL cluster, stopped and deleted afterwards."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed; "
            "`apt-get install postgresql` provides them"
        )
    pytest.importorskip(
        "psycopg", reason="psycopg (the PostgreSQL driver SQLAlchemy uses) is missing"
    )
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        prefix = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="dltrain-pg-"))
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    port = free_port()

    def pg(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{args[0]} failed: {done.stdout}\n{done.stderr}"

    data = base / "data"
    pg(str(bin_dir / "initdb"), "-D", str(data), "-U", "dltrain", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    pg(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(base / "server.log"),
        "-o",
        options,
        "-w",
        "start",
    )
    try:
        pg(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dltrain", "tune")
        yield f"postgresql://dltrain@127.0.0.1:{port}/tune"
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(base, ignore_errors=True)


def test_two_tuners_split_one_postgresql_study_without_duplicates(
    postgres_url: str,
    tmp_path: Path,
    idx_folder: Path,
    write_recipe: RecipeWriter,
) -> None:
    space = {
        "train.optimizer.learning_rate": {"log_uniform": [1.0e-3, 1.0e-1]},
        "model.dropout": {"uniform": [0.0, 0.4]},
    }
    write_recipe(
        idx_folder,
        train={"epochs": 3},
        tune={"num_trials": 6, "sampler": "tpe", "pruner": "hyperband", "space": space},
    )
    prepared = run_dltrain("prepare", cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    tuners = [
        subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, "tune", "--storage", postgres_url, "--json"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "FAKE_EPOCH_SECONDS": "0.2"},
        )
        for _ in range(2)
    ]
    outputs = [tuner.communicate(timeout=600) for tuner in tuners]
    for tuner, (_, err) in zip(tuners, outputs, strict=True):
        assert tuner.returncode == 0, err

    import optuna

    study = optuna.load_study(study_name="tiny", storage=postgres_url)
    trials = study.trials
    assert len(trials) == 6  # exactly num_trials between the two, none lost, none extra
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    workers = Counter(t.user_attrs["worker"]["pid"] for t in trials)
    assert set(workers) == {tuner.pid for tuner in tuners}, f"not split: {workers}"
    # No parameter set was proposed twice: each tuner samples its own sequence.
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 6
    documents = [json.loads(out) for out, _ in outputs]
    assert sorted(d["session"]["trials_run"] for d in documents) == sorted(workers.values())
    for document in documents:  # each tuner reports the whole shared study
        assert sorted(t["number"] for t in document["trials"]) == list(range(6))

    optuna_cli = subprocess.run(
        [
            str(Path(sys.executable).with_name("optuna")),
            "trials",
            "--storage",
            postgres_url,
            "--study-name",
            "tiny",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert optuna_cli.returncode == 0, optuna_cli.stderr
    assert len(json.loads(optuna_cli.stdout)) == 6


# A password that trust authentication ignores, written as a user must (%40 is @, %3A is :);
# neither its written nor its decoded form, nor any piece a parser could cut, may be shown.
PASSWORD = "Zq7%40Xw9%3APk4"
PASSWORD_PIECES = [PASSWORD, "Zq7@Xw9:Pk4", "Zq7", "Xw9", "Pk4"]
TEXT_SUFFIXES = {".json", ".yaml", ".csv", ".log", ".txt", ".md"}


def with_password(url: str) -> str:
    return url.replace("postgresql://dltrain@", f"postgresql://dltrain:{PASSWORD}@")


def assert_nowhere(pieces: list[str], texts: dict[str, str], folder: Path) -> None:
    """No piece in any text, nor in any text file under ``folder`` (run.json, logs,
    summary.json, trials.csv, best.yaml, trial specs and results)."""
    written = [p for p in folder.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES]
    assert any(p.name == "summary.json" for p in written) and any(
        p.suffix == ".log" for p in written
    )
    for path in written:
        texts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    for name, text in texts.items():
        for piece in pieces:
            assert piece not in text, f"{name} shows {piece!r}"


def study_attributes(url: str) -> str:
    """Every row of every table of the study database, as one text."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    rows: list[str] = []
    try:
        with engine.connect() as connection:
            for table in sqlalchemy.inspect(connection).get_table_names():
                result = connection.execute(sqlalchemy.text(f'SELECT * FROM "{table}"'))
                rows += [repr(tuple(row)) for row in result]
    finally:
        engine.dispose()
    assert rows, "the study database is empty"
    return "\n".join(rows)


def test_a_password_in_the_storage_url_reaches_no_output_file_or_study_record(
    postgres_url: str, tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    """Trial 23 fails with an error quoting the storage URL (as a driver's error may)."""
    url = with_password(postgres_url)
    write_recipe(
        idx_folder,
        train={"epochs": 2},
        tune={"sampler": "grid", "space": {"train.batch_size": [16, 23]}},
    )
    tuner = subprocess.run(
        [sys.executable, "-c", LAUNCHER, "tune", "--storage", url, "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tuner.returncode == 0, tuner.stderr
    document = json.loads(tuner.stdout)
    failed = [t for t in document["trials"] if t["state"] == "fail"]
    assert len(failed) == 1 and "lost the study database postgresql://dltrain:***@" in str(
        failed[0]["reason"]
    )
    texts = {"stdout": tuner.stdout, "stderr": tuner.stderr, "study": study_attributes(url)}
    assert_nowhere(PASSWORD_PIECES, texts, tmp_path)


def test_a_real_trial_keeps_the_password_out_of_its_run_folder(
    postgres_url: str, tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    """One trial of real training: its run.json, recipe, log and the study's summary."""
    url = with_password(postgres_url)
    write_recipe(idx_folder, tune={"num_trials": 1, "space": {"model.dropout": [0.0]}})
    tuner = run_dltrain("tune", "--storage", url, "--json", cwd=tmp_path)
    assert tuner.returncode == 0, tuner.stderr
    assert list(tmp_path.glob("runs/tiny/*/run.json")), "the trial wrote no run.json"
    assert list(tmp_path.glob("runs/tiny/tune/tiny/summary.json"))
    texts = {"stdout": tuner.stdout, "stderr": tuner.stderr, "study": study_attributes(url)}
    assert_nowhere(PASSWORD_PIECES, texts, tmp_path)
