"""Recipe loading: discovery, overrides, and errors that name the key, the file and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dltrain.errors import RecipeError, UsageError
from dltrain.recipe import find_recipe, load_recipe, parse_assignment
from dltrain.recipe.choices import OptimizerName, ScheduleName
from dltrain.recipe.models import CnnSpec, MlpSpec
from tests.conftest import REPO


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MINIMAL = "name: t\ndata: {source: raw}\n"


def test_defaults_fill_an_minimal_recipe(tmp_path: Path) -> None:
    loaded = load_recipe(write(tmp_path, MINIMAL))
    recipe = loaded.recipe
    assert recipe.data.source == (tmp_path / "raw").resolve()  # relative to the recipe's folder
    assert isinstance(recipe.model, CnnSpec)
    assert recipe.train.optimizer.name == OptimizerName.ADAM
    assert recipe.train.early_stopping.restore_best_weights is True


def test_unknown_key_names_key_file_and_closest_valid_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "train:\n  optimiser: {name: sgd}\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    message = caught.value.message
    assert "`train.optimiser`" in message
    assert "Did you mean `train.optimizer`?" in message
    assert str(path) in message


def test_unknown_key_inside_a_model_family_lists_that_familys_keys(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "model: {family: mlp, unit: [4]}\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    message = caught.value.message
    assert "Did you mean `model.units`?" in message
    assert "filters" not in message  # a CNN key would mislead an MLP user


@pytest.mark.parametrize("family", ["autoencoder", "gan"])
def test_clipping_predictions_is_refused_where_no_target_is_predicted(
    tmp_path: Path, family: str
) -> None:
    path = write(tmp_path, MINIMAL + f"model: {{family: {family}, clip_to_target_range: true}}\n")
    with pytest.raises(RecipeError, match="`model.clip_to_target_range`"):
        load_recipe(path)
    mlp = write(tmp_path, MINIMAL + "model: {family: mlp, clip_to_target_range: true}\n", "m.yaml")
    assert load_recipe(mlp).recipe.model.clip_to_target_range is True  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        (("train.optimizer.learning_rate", 0), "train.optimizer.learning_rate"),
        (("train.epochs", -1), "train.epochs"),
        (("train.batch_size", 0), "train.batch_size"),
        (("data.split.validation", 1.5), "data.split.validation"),
        (("model.dropout", 1.0), "model.dropout"),
    ],
)
def test_out_of_range_values_are_refused(
    tmp_path: Path, override: tuple[str, object], needle: str
) -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path, MINIMAL), [override])
    assert needle in caught.value.message
    assert "given on the command line" in caught.value.message


def test_enum_typo_suggests_the_closest_choice(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path, MINIMAL), [("train.optimizer.name", "adamm")])
    assert "Did you mean 'adam'?" in caught.value.message


def test_overrides_apply_in_order_and_switch_families(tmp_path: Path) -> None:
    loaded = load_recipe(
        write(tmp_path, MINIMAL),
        [
            ("train.lr_schedule.name", "cosine"),
            ("train.batch_size", 64),
            ("train.batch_size", 256),
            ("model", {"family": "mlp", "units": [32]}),
        ],
    )
    assert loaded.recipe.train.lr_schedule.name == ScheduleName.COSINE
    assert loaded.recipe.train.batch_size == 256
    assert isinstance(loaded.recipe.model, MlpSpec) and loaded.recipe.model.units == [32]


def test_command_line_source_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "cwd"
    loaded = load_recipe(write(tmp_path, MINIMAL), [("data.source", "other")], cwd=elsewhere)
    assert loaded.recipe.data.source == (elsewhere / "other").resolve()


def test_set_values_are_read_as_yaml() -> None:
    assert parse_assignment("train.batch_size=256") == ("train.batch_size", 256)
    assert parse_assignment("model.filters=[32, 64]") == ("model.filters", [32, 64])
    assert parse_assignment("train.optimizer.learning_rate=1e-3") == (
        "train.optimizer.learning_rate",
        1e-3,
    )
    assert parse_assignment("data.source=a=b") == ("data.source", "a=b")


@pytest.mark.parametrize("text", ["train.batch_size", "=3", "train..x=1", "1abc=2"])
def test_malformed_set_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_assignment(text)


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: t\ndata:\n  source: [unclosed\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert "line" in caught.value.message and "not valid YAML" in caught.value.message


def test_missing_data_section_is_named(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe(write(tmp_path, "name: t\n"))
    assert "Missing required key `data`" in caught.value.message


def test_name_defaults_to_the_folder_of_dltrain_yaml(tmp_path: Path) -> None:
    project = tmp_path / "my project"
    project.mkdir()
    loaded = load_recipe(write(project, "data: {source: raw}\n", name="dltrain.yaml"))
    assert loaded.recipe.name == "my_project"


def test_find_recipe_default_and_named(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as caught:
        find_recipe(None, cwd=tmp_path)
    assert "dltrain.yaml" in caught.value.message
    (tmp_path / "recipes").mkdir()
    named = write(tmp_path / "recipes", MINIMAL, name="demo.yaml")
    assert find_recipe("demo", cwd=tmp_path) == named
    with pytest.raises(RecipeError) as caught:
        find_recipe("dmeo", cwd=tmp_path)
    assert "demo" in caught.value.message  # lists what is there


def test_resolved_recipe_round_trips(tmp_path: Path) -> None:
    loaded = load_recipe(write(tmp_path, MINIMAL), [("train.epochs", 3)])
    again = load_recipe(write(tmp_path, loaded.to_yaml(), name="resolved.yaml"))
    assert again.recipe == loaded.recipe


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_is_valid(path: Path) -> None:
    loaded = load_recipe(path)
    assert loaded.recipe.name == path.stem
    assert yaml.safe_load(path.read_text())["name"] == loaded.recipe.name


def test_a_folder_given_as_the_recipe_is_named_a_folder(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    with pytest.raises(RecipeError, match="is a folder .*not a recipe file") as caught:
        find_recipe("project", cwd=tmp_path)
    assert "does not exist" not in caught.value.message
    (tmp_path / "project" / "dltrain.yaml").write_text("data: {source: x.npz}\n")
    with pytest.raises(RecipeError, match=r"pass --recipe .*project/dltrain.yaml"):
        find_recipe("project", cwd=tmp_path)
