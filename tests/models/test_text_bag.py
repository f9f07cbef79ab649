"""The bag encoder for texts: word n-grams fitted by prepare, weighed inside the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dltrain.backend import keras, tf
from dltrain.data.prepare import prepare
from dltrain.errors import RecipeError
from dltrain.manifest import Manifest, TextPreprocessing
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe.data import DataSpec
from dltrain.recipe.models import TextSpec

SPAM = "WIN a FREE prize now, call 0800{i}!"
HAM = "see you at lunch on day {i}"


def prepared(tmp_path: Path, **text: object) -> Manifest:
    messages = [m.format(i=i) for i in range(30) for m in (SPAM, HAM)]
    frame = pd.DataFrame({"label": ["spam", "ham"] * 30, "message": messages})
    frame.to_csv(tmp_path / "sms.tsv", sep="\t", index=False, header=False)
    spec = DataSpec.model_validate(
        {"source": tmp_path / "sms.tsv", "target": "column_1", "text": text}
    )
    return prepare(spec, 1, tmp_path / "text").dataset.manifest


def test_prepare_fits_ngrams_and_their_idf(tmp_path: Path) -> None:
    manifest = prepared(tmp_path, ngrams=2, standardize="lower")
    pre = manifest.preprocessing_as(TextPreprocessing)
    assert pre.ngrams == 2
    assert {"free prize", "call", "now,", "see you"} <= set(pre.vocabulary)
    assert pre.idf is not None and len(pre.idf) == len(pre.vocabulary)
    # Every training spam holds both "win" and "free prize": the same idf. A day number is in
    # one training text only: the largest idf, log(1 + texts / 2).
    idf = dict(zip(pre.vocabulary, pre.idf, strict=True))
    train = manifest.splits["train"].num_examples
    assert idf["win"] == pytest.approx(idf["free prize"])
    assert max(pre.idf) == pytest.approx(np.log1p(train / 2), rel=1e-5)
    assert idf["win"] < max(pre.idf)


def test_character_ngrams_reach_the_model(tmp_path: Path) -> None:
    manifest = prepared(tmp_path, split="character", ngrams=3, standardize="lower")
    pre = manifest.preprocessing_as(TextPreprocessing)
    assert pre.split == "character" and {"w i n", "0 8 0", "!", " "} <= set(pre.vocabulary)
    model = build_model(TextSpec(encoder="bag", dense=[4]), ModelIO(manifest))
    bag = keras.Model(model.inputs, model.get_layer("vectorize").output)
    column = 1 + pre.vocabulary.index("w i n")
    hot = np.asarray(bag(tf.constant(["Winter", "wi n"])))[:, column]
    assert hot[0] > 0 and hot[1] == 0  # "win" inside a new word counts; split by a space not


@pytest.mark.parametrize("mode", ["multi_hot", "count", "tf_idf"])
def test_bag_model_takes_raw_texts(tmp_path: Path, mode: str) -> None:
    manifest = prepared(tmp_path, ngrams=2, standardize="lower")
    pre = manifest.preprocessing_as(TextPreprocessing)
    spec = TextSpec(encoder="bag", bag_mode=mode, dense=[8], dropout=0.0)
    model = build_model(spec, ModelIO(manifest))
    texts = tf.constant(["free free prize", "see you at lunch"])
    probabilities = np.asarray(model(texts))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    bag = np.asarray(keras.Model(model.inputs, model.get_layer("vectorize").output)(texts))
    assert bag.shape == (2, len(pre.vocabulary) + 1)  # [UNK] first
    column = {token: i + 1 for i, token in enumerate(pre.vocabulary)}
    free, pair = bag[0, column["free"]], bag[0, column["free prize"]]
    assert pair > 0 and bag[1, column["free"]] == 0
    assert pre.idf is not None
    expected = {"multi_hot": 1.0, "count": 2.0, "tf_idf": 2.0 * pre.idf[column["free"] - 1]}
    assert free == pytest.approx(expected[mode], rel=1e-5)


def test_bag_model_saves_and_loads(tmp_path: Path) -> None:
    manifest = prepared(tmp_path, ngrams=2)
    model = build_model(TextSpec(encoder="bag", dense=[4]), ModelIO(manifest))
    texts = tf.constant(["WIN a prize", "lunch today?"])
    model.save(tmp_path / "bag.keras")
    loaded = keras.models.load_model(tmp_path / "bag.keras")
    np.testing.assert_allclose(np.asarray(loaded(texts)), np.asarray(model(texts)), rtol=1e-5)


def test_tf_idf_refused_without_prepared_idf(tmp_path: Path) -> None:
    manifest = prepared(tmp_path)
    pre = manifest.preprocessing_as(TextPreprocessing)
    old = manifest.model_copy(update={"preprocessing": pre.model_copy(update={"idf": None})})
    with pytest.raises(RecipeError, match="prepare --force"):
        build_model(TextSpec(encoder="bag", bag_mode="tf_idf"), ModelIO(old))
    model = build_model(TextSpec(encoder="bag", bag_mode="multi_hot"), ModelIO(old))
    assert model.get_layer("vectorize").output.shape[-1] == len(pre.vocabulary) + 1


def test_prepare_fits_the_bag_view_beside_the_words(tmp_path: Path) -> None:
    manifest = prepared(tmp_path, bag={"ngrams": 3, "max_tokens": 500})
    pre = manifest.preprocessing_as(TextPreprocessing)
    assert pre.split == "whitespace" and "prize" in pre.vocabulary  # the encoder's words
    view = pre.bag
    assert view is not None and view.split == "character" and view.standardize == "lower"
    assert {"w i n", "0 8 0", ","} <= set(view.vocabulary)  # lower: punctuation kept
    assert len(view.vocabulary) <= 498 and len(view.idf) == len(view.vocabulary)
    (tmp_path / "none").mkdir()
    assert prepared(tmp_path / "none").preprocessing_as(TextPreprocessing).bag is None


def test_data_without_a_bag_view_keeps_its_digest() -> None:
    """Datasets prepared before data.text.bag existed are not refused as stale."""
    import hashlib
    import json

    from dltrain.data.prepare import data_spec_digest

    spec = DataSpec.model_validate({"source": "sms.tsv", "target": "column_1"})
    before = spec.model_dump(mode="json")
    before.pop("shard_rows")
    before.pop("target_transform")  # nor the target transform, which came later still
    before["text"].pop("bag")
    payload = json.dumps({"data": before, "seed": 3}, sort_keys=True).encode()
    assert data_spec_digest(spec, 3) == hashlib.sha256(payload).hexdigest()
    with_bag = DataSpec.model_validate({**spec.model_dump(), "text": {"bag": {}}})
    assert data_spec_digest(with_bag, 3) != data_spec_digest(spec, 3)


@pytest.mark.parametrize("encoder", ["bilstm", "conv", "bag"])
def test_encoder_and_bag_view_take_raw_texts(tmp_path: Path, encoder: str) -> None:
    manifest = prepared(tmp_path, bag={"ngrams": 3})
    view = manifest.preprocessing_as(TextPreprocessing).bag
    assert view is not None
    spec = TextSpec(encoder=encoder, units=4, embedding_dim=4, filters=4, dense=[4])
    model = build_model(spec, ModelIO(manifest))
    texts = tf.constant(["WIN a prize, call 0800!", "see you at lunch"])
    encoded = model.get_layer("views").input[0].shape[-1]
    assert model.get_layer("views").output.shape[-1] == encoded + len(view.vocabulary) + 1

    bag = keras.Model(model.inputs, model.get_layer("bag_view_vectorize").output)(texts)
    column = 1 + view.vocabulary.index("0 8 0")
    weights = np.asarray(bag)[:, column]
    assert weights[0] == pytest.approx(view.idf[column - 1], rel=1e-5) and weights[1] == 0

    model.save(tmp_path / "views.keras")
    loaded = keras.models.load_model(tmp_path / "views.keras")
    np.testing.assert_allclose(np.asarray(loaded(texts)), np.asarray(model(texts)), rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "model", "rate"),
    [
        ("{standardize: lower, split: character, ngrams: 3}", "encoder: bag", 0.001),
        # both views; the LSTM needs a faster rate to settle in 2 short epochs
        ("{bag: {ngrams: 3}}", "encoder: bilstm, units: 4, embedding_dim: 4", 0.01),
    ],
)
def test_bag_recipe_from_the_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, model: str, rate: float
) -> None:
    """prepare → train → evaluate → predict (raw lines) → export, character n-grams (prepare and
    train in this process, the rest from the shell)."""
    import csv
    import json

    from tests.conftest import invoke
    from tests.conftest import run_dltrain as dltrain

    prepared(tmp_path)  # writes sms.tsv
    recipe = tmp_path / "bag.yaml"
    recipe.write_text(
        "name: bag\nseed: 1\n"
        f"data: {{source: {tmp_path / 'sms.tsv'}, target: column_1, text: {text}}}\n"
        f"model: {{family: text, {model}, bag_mode: tf_idf, dense: [8]}}\n"
        "train: {epochs: 2, batch_size: 8, deterministic: true,\n"
        f"        optimizer: {{name: adam, learning_rate: {rate}}}}}\n"
    )
    monkeypatch.chdir(tmp_path)
    for command in ("prepare", "train"):
        code, _, err = invoke(command, "--recipe", str(recipe))
        assert code == 0, err
    evaluated = dltrain("evaluate", "--recipe", str(recipe), "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["metrics"]["accuracy"] == 1.0  # two obvious kinds

    (tmp_path / "new.txt").write_text("WIN a FREE prize, call 080099!\nsee you at lunch\n")
    predicted = dltrain(
        "predict", "--recipe", str(recipe), "--input", "new.txt", "--output", "out.csv",
        cwd=tmp_path,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    with (tmp_path / "out.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["prediction"] == "spam"
    assert float(rows[0]["probability_spam"]) > float(rows[1]["probability_spam"])

    exported = dltrain(
        "export", "--recipe", str(recipe), "--format", "saved_model", "--json", cwd=tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    for entry in json.loads(exported.stdout)["exports"]:
        assert entry["agreement"] == 1.0
