"""Bad recipes and bad flags, spread over every command that reads a recipe.

A recipe is read before any data or model, so these cases run in the small source project: a
failed command must leave its table and its prepared dataset data/bad/ untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.bad_inputs.corpus import Case, case, check, params, recipe, write

GOOD_DATA = {"source": "good.csv", "target": "y"}
FIX_RECIPE = "Fix the recipe (or the flag)"
DROPOUT_SPACE = {"space": {"model.dropout": {"uniform": [0.1, 0.5]}}}


def with_data(**data: Any) -> Any:
    return recipe({**GOOD_DATA, **data})


def with_model(**model: Any) -> Any:
    return recipe(GOOD_DATA, model)


def with_section(**sections: Any) -> Any:
    return recipe(GOOD_DATA, **sections)


def yaml_text(text: str | bytes) -> Any:
    return write("dltrain.yaml", text)


def remove(name: str) -> Any:
    return lambda project: (project / name).unlink()


ALIAS_BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    "f: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
)

RECIPE_FILES = [
    case(
        "empty file",
        "prepare",
        ["dltrain.yaml", "`data`"],
        "Missing required key",
        yaml_text(""),
    ),
    case("a list", "train", "dltrain.yaml", "expected a mapping", yaml_text("- 1\n- 2\n")),
    case(
        "a scalar",
        "evaluate",
        ["dltrain.yaml", "holds a str"],
        "expected a mapping",
        yaml_text("just words\n"),
    ),
    case(
        "invalid YAML",
        "prepare",
        ["dltrain.yaml", "line 2, column 6"],
        "Fix the indentation or quoting there",
        yaml_text("data: [1, 2\nmodel: x\n"),
    ),
    case(
        "tab indentation",
        "train",
        ["dltrain.yaml", "line 2, column 1", "'\\t'"],
        "Fix the indentation",
        yaml_text("data:\n\tsource: good.csv\n"),
    ),
    case(
        "duplicate key",
        "prepare",
        ["'name' is given twice", "lines 1 and 2"],
        "fix the file there",
        yaml_text("name: a\nname: b\n"),
    ),
    case(
        "binary file",
        "predict -i good.csv -o out.csv",
        ["Cannot read recipe", "dltrain.yaml"],
        "Expected a UTF-8 YAML file",
        yaml_text(bytes(range(256)) * 4),
    ),
    case(
        "latin-1 text",
        "export",
        ["dltrain.yaml", "byte 0xe9"],
        "Expected a UTF-8 YAML file",
        yaml_text("name: caf\xe9\n".encode("latin-1")),
    ),
    case(
        "nested 200 deep",
        "prepare",
        ["dltrain.yaml", "nests more than 64 levels"],
        "fix the file there",
        yaml_text("a: " + "[" * 200 + "]" * 200 + "\n"),
    ),
    case(
        "alias bomb",
        "runs",
        ["dltrain.yaml", "aliases expand to more than 100,000 values"],
        "fix the file there",
        yaml_text(ALIAS_BOMB),
    ),
    case(
        "two megabytes",
        "find-lr",
        ["dltrain.yaml", "2,097,154 characters"],
        "at most 1,048,576",
        yaml_text("# " + "x" * (2 << 20)),
    ),
    case(
        "python object tag",
        "tune --dry-run",
        ["dltrain.yaml", "python/object/apply:os.system"],
        "Fix the indentation or quoting",
        yaml_text("name: !!python/object/apply:os.system ['echo hi']\n"),
    ),
    case(
        "a number as a key",
        "prepare",
        ["`1`", "Keys should be strings"],
        FIX_RECIPE,
        yaml_text("1: one\ndata: {source: good.csv, target: y}\nmodel: {family: mlp}\n"),
    ),
    case(
        "no recipe anywhere",
        "prepare",
        ["no dltrain.yaml in"],
        "Pass one with --recipe FILE",
        remove("dltrain.yaml"),
    ),
    case(
        "--recipe names no file",
        "train --recipe nope.yaml",
        ["nope.yaml", "does not exist"],
        "Check the path",
    ),
    case(
        "--recipe names no file, recipes/ lists the real ones",
        "evaluate --recipe mnst",
        ["mnst", "does not exist"],
        "Recipes in recipes/: mnist",
        write("recipes/mnist.yaml", "name: mnist\n"),
    ),
    case(
        "--recipe is a folder",
        "prepare --recipe .",
        ["--recipe . is a folder"],
        "pass --recipe",
    ),
    case(
        "--recipe is an empty file",
        "prepare --recipe empty.yaml",
        ["empty.yaml", "`data`"],
        "Missing required key",
        write("empty.yaml", ""),
    ),
]

KEYS_AND_VALUES = [
    case(
        "unknown top-level key", "prepare", "`datas`", "Did you mean `data`?", with_section(datas=1)
    ),
    case(
        "unknown data key",
        "train",
        "`data.sourc`",
        "Did you mean `data.source`?",
        with_data(sourc="x"),
    ),
    case(
        "key of another model family",
        "train",
        ["`model.units`", "Valid keys in model"],
        "filters",
        recipe(GOOD_DATA, {"family": "cnn", "units": [4]}),
    ),
    case(
        "epochs as a word",
        "train",
        ["`train.epochs`", "'ten'"],
        FIX_RECIPE,
        with_section(train={"epochs": "ten"}),
    ),
    case(
        "epochs zero",
        "train",
        ["`train.epochs`", "Received: 0"],
        "greater than 0",
        with_section(train={"epochs": 0}),
    ),
    case(
        "fractional batch size",
        "find-lr",
        ["`train.batch_size`", "1.5"],
        "valid integer",
        with_section(train={"batch_size": 1.5}),
    ),
    case(
        "learning rate 1e9",
        "train",
        ["`train.optimizer.learning_rate`", "1000000000.0"],
        "less than or equal to 10",
        with_section(train={"optimizer": {"learning_rate": 1e9}}),
    ),
    case(
        "learning rate as a word",
        "tune --dry-run",
        ["`train.optimizer.learning_rate`", "'fast'"],
        "valid number",
        with_section(train={"optimizer": {"learning_rate": "fast"}}),
    ),
    case(
        "misspelt optimizer",
        "train",
        ["`train.optimizer.name`", "'adamm'"],
        "Did you mean 'adam'?",
        with_section(train={"optimizer": {"name": "adamm"}}),
    ),
    case(
        "momentum for adam",
        "train",
        ["`momentum`", "name=adam"],
        "Remove it or pick one of those optimizers",
        with_section(train={"optimizer": {"name": "adam", "momentum": 0.9}}),
    ),
    case(
        "two clipping modes",
        "find-lr",
        ["clipnorm=1.0", "clipvalue=0.5"],
        "Set only one of",
        with_section(train={"optimizer": {"clipnorm": 1.0, "clipvalue": 0.5}}),
    ),
    case(
        "unknown model family",
        "train",
        ["`model.family`", "'transformerz'"],
        "Did you mean 'transfer'?",
        with_model(family="transformerz"),
    ),
    case(
        "model section a list",
        "train",
        ["`model`", "Received: [1, 2]"],
        ["must be a mapping such as {family: mlp", "one of mlp, cnn"],
        recipe(GOOD_DATA, [1, 2]),
    ),  # type: ignore[arg-type]
    case(
        "model section empty",
        "prepare",
        ["`model`", "Received: None"],
        ["must be a mapping such as {family: mlp", "one of mlp, cnn"],
        yaml_text("data: {source: good.csv, target: y}\nmodel:\n"),
    ),
    case(
        "model family a number",
        "train",
        ["`model`", "{'family': 5}"],
        "`family` is one of mlp",
        recipe(GOOD_DATA, {"family": 5}),
    ),
    case(
        "negative units",
        "train",
        ["`model.units.0`", "-4"],
        "greater than 0",
        with_model(family="mlp", units=[-4]),
    ),
    case(
        "dropout 1.5",
        "prepare",
        ["`model.dropout`", "1.5"],
        "less than 1",
        with_model(family="mlp", units=[4], dropout=1.5),
    ),
    case(
        "data is a string",
        "prepare",
        ["`data`", "'good.csv'"],
        "valid dictionary",
        recipe("good.csv"),
    ),  # type: ignore[arg-type]
    case(
        "split leaves nothing to train",
        "prepare",
        ["validation=0.6", "test=0.5"],
        "must leave at least 10% to train on",
        with_data(split={"validation": 0.6, "test": 0.5}),
    ),
    case(
        "group split without a column",
        "prepare",
        ["split method group", "column=None"],
        "needs `split.column`",
        with_data(split={"method": "group"}),
    ),
    case(
        "unknown data format",
        "prepare",
        ["`data.format`", "'xlsx'"],
        "must be one of",
        with_data(format="xlsx"),
    ),
    case(
        "two-character delimiter",
        "prepare",
        ["`data.csv.delimiter`", "';;'"],
        "single character",
        with_data(csv={"delimiter": ";;"}),
    ),
    case(
        "unknown encoding",
        "prepare",
        ["`data.csv.encoding: klingon`"],
        "Expected a codec name",
        with_data(csv={"encoding": "klingon"}),
    ),
    case("seed as a word", "train", ["`seed`", "'abc'"], FIX_RECIPE, with_section(seed="abc")),
    case(
        "name escaping its folder",
        "prepare",
        ["`name`", "'../evil'"],
        "String should match",
        recipe(GOOD_DATA, name="../evil"),
    ),
    case(
        "unknown task",
        "prepare",
        ["`data.task`", "'clustering'"],
        "must be one of",
        with_data(task="clustering"),
    ),
    case(
        "forecasting without a series",
        "prepare",
        ["task forecasting", "series=None"],
        "needs a `series` section",
        with_data(task="forecasting"),
    ),
    case(
        "log pixel scaling",
        "prepare",
        ["scaling=log"],
        "`numeric_scaling`",
        with_data(scaling="log"),
    ),
    case(
        "derived column with Python in it",
        "prepare",
        ["derived column 'z'", "'x ** 2 + import os'"],
        "e.g. 'total_rooms / households'. Fix the recipe",  # one full stop, not two
        with_data(derived={"z": "x ** 2 + import os"}),
    ),
    case(
        "unknown column type",
        "prepare",
        ["`data.columns.x.type`", "'float'"],
        "must be one of",
        with_data(columns={"x": {"type": "float"}}),
    ),
    case(
        "no data.source",
        "prepare",
        "`data.source`",
        "Missing required key",
        recipe({"target": "y"}),
    ),
    case(
        "data.source a number",
        "prepare",
        ["`data.source`", "Received: 5"],
        FIX_RECIPE,
        recipe({"source": 5, "target": "y"}),
    ),
    case(
        "image size of three numbers",
        "prepare",
        ["`data.image.size`", "[1, 2, 3]"],
        "[height, width]",
        with_data(image={"size": [1, 2, 3]}),
    ),
    case(
        "two image channels",
        "prepare",
        ["`data.image.channels`", "Received: 2"],
        "must be 1 or 3",
        with_data(image={"channels": 2}),
    ),
    case(
        "vocabulary of one token",
        "prepare",
        ["`data.text.max_tokens`", "Received: 1"],
        "greater than or equal to 10",
        with_data(text={"max_tokens": 1}),
    ),
    case(
        "lookback zero",
        "prepare",
        ["`data.series.lookback`", "Received: 0"],
        "greater than 0",
        with_data(series={"lookback": 0}),
    ),
    case(
        "calendar cycle twice",
        "prepare",
        ["day_of_week more than once"],
        "list each cycle once",
        with_data(series={"calendar": ["day_of_week", "day_of_week"]}),
    ),
    case(
        "classes as one string",
        "prepare",
        ["`data.classes`", "'a,b'"],
        "valid list",
        with_data(classes="a,b"),
    ),
    case(
        "duration as a word",
        "train",
        ["`train.time_budget`", "'forever'"],
        "such as 90s, 10m or 1h30m",
        with_section(train={"time_budget": "forever"}),
    ),
    case(
        "schedule paced by no budget",
        "train",
        ["`train.lr_schedule.pace` is time_budget", "no `train.time_budget`"],
        "Set one (train.time_budget: 15m",
        with_section(train={"lr_schedule": {"name": "cosine", "pace": "time_budget"}}),
    ),
    case(
        "a periodic key for piecewise-linear embeddings",
        "train",
        ["`model.numeric_embedding`", "scale set does nothing for kind: piecewise_linear"],
        "Remove scale, or set the kind it belongs to",
        with_model(family="mlp", numeric_embedding={"kind": "piecewise_linear", "scale": 3}),
    ),
    case(
        "gate that does not parse",
        "evaluate",
        ["accuracy>>0.9"],
        "Expected `metric OP number`",
        with_section(evaluate={"require": ["accuracy>>0.9"]}),
    ),
]

SETS = [
    case(
        "--set without =",
        "prepare --set train.epochs",
        "'train.epochs'",
        "--set expects dotted.key=value",
    ),
    case(
        "--set with an empty key part",
        "train --set train..epochs=3",
        "'train..epochs=3'",
        "--set expects dotted.key=value",
    ),
    case(
        "--set an unknown key",
        "train --set train.epoch=3",
        ["`train.epoch`", "given on the command line"],
        "Did you mean `train.epochs`?",
    ),
    case(
        "--set inside a number",
        "prepare --set seed.x=3",
        ["seed.x", "is 1, not a section"],
        "Check the key's spelling",
    ),
    case(
        "--set a list where a number goes",
        "train --set train.batch_size=[1,2]",
        ["`train.batch_size`", "[1, 2]"],
        "valid integer",
    ),
    case(
        "--set an empty value",
        "evaluate --set train.epochs=",
        ["`train.epochs`", "''"],
        "valid integer",
    ),
    case(
        "--set unbalanced braces",
        "runs --set train.epochs={{",
        ["`train.epochs`", "'{{'"],
        "valid integer",
    ),
    case(
        "--epochs 0",
        "train --epochs 0",
        ["`train.epochs`", "given on the command line"],
        "greater than 0",
    ),
    case(
        "--lr negative",
        "train --lr -1",
        ["`train.optimizer.learning_rate`", "-1.0"],
        "greater than 0",
    ),
    case(
        "--batch-size 0 for find-lr",
        "find-lr --batch-size 0",
        ["`train.batch_size`"],
        "greater than 0",
    ),
    case(
        "--tolerance negative",
        "evaluate --tolerance -1",
        ["`evaluate.tolerance`", "-1.0"],
        "greater than or equal to 0",
    ),
    case(
        "--bootstrap a hundred million",
        "evaluate --bootstrap 100000000",
        ["`evaluate.bootstrap`", "100000000"],
        "less than or equal to 100000",
    ),
    case(
        "--trials 0",
        "tune --trials 0 --dry-run",
        ["`tune.num_trials`", "Received: 0"],
        "greater than 0",
    ),
    case(
        "--set an infinite L2 penalty",
        "train --set model.l2=.inf",
        ["`model.l2`", "Received: inf"],
        "finite number",
    ),
    case(
        "--lr nan",
        "train --lr nan",
        ["`train.optimizer.learning_rate`", "Received: nan"],
        "finite number",
    ),
    case(
        "--tolerance inf",
        "evaluate --tolerance inf",
        ["`evaluate.tolerance`", "Received: inf"],
        "finite number",
    ),
    case(
        "--time-budget a word",
        "train --time-budget soon",
        ["`train.time_budget`", "'soon'"],
        "such as 90s",
    ),
]

FLAGS = [  # refused by the command line parser, before any recipe is read
    case("misspelt option", "prepare --forse", "--forse", "Possible options: --force"),
    case("misspelt command", "prepre", "'prepre'", "Did you mean 'prepare'?"),
    case(
        "--split not a split",
        "evaluate --split holdout",
        ["'--split'", "'holdout'"],
        "'train', 'validation', 'test'",
    ),
    case(
        "--optimizer not an optimizer",
        "train --optimizer adamm",
        ["'--optimizer'", "'adamm'"],
        "'adam'",
    ),
    case(
        "--lr-schedule unknown",
        "train --lr-schedule triangle",
        ["'--lr-schedule'", "'triangle'"],
        "'cosine'",
    ),
    case("--epochs a word", "train --epochs many", "'--epochs'", "valid integer"),
    case("--limit 0", "runs --limit 0", "'--limit'", "greater than or equal to 1"),
    case("--split for runs", "runs --split dev", ["'--split'", "'dev'"], "'validation'"),
    case(
        "export --format coreml",
        "export --format coreml",
        ["'--format'", "'coreml'"],
        "'saved_model', 'tflite', 'onnx'",
    ),
    case("predict without --output", "predict -i good.csv", "'--output'", "Missing option"),
    case(
        "predict --batch-size 0",
        "predict -i good.csv -o o.csv --batch-size 0",
        "'--batch-size'",
        "greater than or equal to 1",
    ),
    case(
        "predict --threshold 2",
        "predict -i good.csv -o o.csv --threshold 2",
        "'--threshold'",
        "less than or equal to 1",
    ),
    case("tune --sampler magic", "tune --sampler magic", ["'--sampler'", "'magic'"], "'tpe'"),
    case(
        "tune --jobs 0",
        "tune --jobs 0 --dry-run",
        ["--jobs 0"],
        "must be at least 1",
        with_section(tune=DROPOUT_SPACE),
    ),
    case(
        "tune --study-name with ../",
        "tune --study-name ../../etc --dry-run",
        "'../../etc'",
        "Use letters, digits",
        with_section(tune=DROPOUT_SPACE),
    ),
    case(
        "init --task clustering",
        "init good.csv --task clustering",
        ["'--task'", "'clustering'"],
        "'regression'",
    ),
    case(
        "evaluate --json with --format markdown",
        "evaluate --json --format markdown",
        ["--json and --format markdown"],
        "choose one",
    ),
    case(
        "evaluate --json with --format model-card",
        "evaluate --json --format model-card",
        ["--json and --format model-card"],
        "choose one",
    ),
    case(
        "evaluate --data with --split",
        "evaluate --data good.csv --split test",
        ["--data good.csv and --split test"],
        "give one",
    ),
]

TUNE_SPACES = [
    case(
        "tune the seed",
        "tune --dry-run",
        "`seed` cannot be tuned",
        "run the study again with --set seed=N",
        with_section(tune={"space": {"seed": {"int": [1, 5]}}}),
    ),
    case(
        "tune a misspelt key",
        "tune --dry-run",
        "`tune.space.train.epoch`",
        "Did you mean `train.epochs`?",
        with_section(tune={"space": {"train.epoch": {"int": [1, 5]}}}),
    ),
    case(
        "tune an empty range",
        "tune --dry-run",
        ["`tune.space.train.optimizer.learning_rate`", "[0.01, 0.0001]"],
        "low must be below high",
        with_section(
            tune={"space": {"train.optimizer.learning_rate": {"log_uniform": [1e-2, 1e-4]}}}
        ),
    ),
    case(
        "tune a log range from zero",
        "tune --dry-run",
        ["`log_uniform`", "[0, 0.01]"],
        "needs low > 0",
        with_section(tune={"space": {"train.optimizer.learning_rate": {"log_uniform": [0, 0.01]}}}),
    ),
    case(
        "tune values the recipe refuses",
        "tune --dry-run",
        ["`tune.space.model.dropout` can propose 1.5"],
        "Fix the range or choices",
        with_section(tune={"space": {"model.dropout": {"uniform": [0.5, 1.5]}}}),
    ),
    case(
        "tune an empty choice",
        "tune --dry-run",
        ["`tune.space.train.batch_size`", "Received: []"],
        "non-empty list",
        with_section(tune={"space": {"train.batch_size": {"choice": []}}}),
    ),
    case(
        "tune space a list",
        "tune --dry-run",
        ["`tune.space`", "[1, 2]"],
        "valid dictionary",
        with_section(tune={"space": [1, 2]}),
    ),
    case(
        "tune with nothing to tune",
        "tune --dry-run",
        "`tune.space` is empty",
        "Add the recipe fields to search",
        with_section(tune={"space": {}}),
    ),
]


@pytest.mark.parametrize(
    "item", params(RECIPE_FILES + KEYS_AND_VALUES + SETS + FLAGS + TUNE_SPACES)
)
def test_bad_recipe_or_flag(item: Case, source_project: Path) -> None:
    check(item, source_project)
