"""Every command's --help ends with real examples, each one a command line that parses; shell
completion is installable and answers without loading TensorFlow."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from dltrain.cli import app
from dltrain.cli.examples import EXAMPLES

runner = CliRunner()
COMMANDS = sorted(info.name or info.callback.__name__ for info in app.registered_commands)


def test_every_command_has_two_or_three_examples() -> None:
    assert sorted(EXAMPLES) == COMMANDS
    for command, examples in EXAMPLES.items():
        assert 2 <= len(examples) <= 3, command
        assert all(line.startswith(f"dltrain {command}") for line, _ in examples), command


@pytest.mark.parametrize("command", COMMANDS)
def test_help_ends_with_the_examples(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    tail = result.output[result.output.index("Examples") :]
    for line, _ in EXAMPLES[command]:
        assert line in tail, line


@pytest.mark.parametrize(
    "example", [line for lines in EXAMPLES.values() for line, _ in lines], ids=str
)
def test_every_example_names_options_that_exist(example: str) -> None:
    # Click reads every option before --help answers: an unknown one ends in exit 2
    result = runner.invoke(app, [*shlex.split(example)[1:], "--help"])
    assert result.exit_code == 0, result.output


def test_completion_script_and_answers_without_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    # Typer's --show-completion guesses the shell from the process's ancestors unless told not
    # to, and a test run without a shell among them (CI, nohup) has none: name the shell instead
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    script = runner.invoke(app, ["--show-completion", "bash"], prog_name="dltrain")
    assert script.exit_code == 0, script.output
    assert "complete -o default -F _dltrain_completion dltrain" in script.output
    probe = (
        "import sys\n"
        "from dltrain.cli import app\n"
        "try:\n    app(prog_name='dltrain')\nexcept SystemExit:\n    pass\n"
        "print('tensorflow' in sys.modules, file=sys.stderr)\n"
    )
    environment = {
        **os.environ,
        "_DLTRAIN_COMPLETE": "complete_bash",
        "COMP_WORDS": "dltrain tr",
        "COMP_CWORD": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True
    )
    assert done.stdout.split() == ["train"]  # what Tab after `dltrain tr` offers
    assert done.stderr.strip().endswith("False")  # a Tab press never loads TensorFlow
