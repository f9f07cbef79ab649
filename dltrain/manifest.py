"""The prepared dataset's contract: what ``manifest.json`` holds, read and validated in one place.

``prepare`` writes it; ``train``, ``evaluate``, ``predict``, ``export`` and ``tune`` read it, and a
run folder keeps a copy so a model still describes its inputs when ``data/`` is gone. Every
consumer reads typed fields from :class:`Manifest`; JSON exists only in :func:`read_manifest` and
:meth:`Manifest.to_json`. The preparation paths build the typed parts and hand ``prepare`` a
:class:`DatasetDescription`, which it completes with the dataset's identity into the manifest.
Light: no TensorFlow, no NumPy.

The input side depends on the feature kind, so ``features`` and ``preprocessing`` are each one of
four classes, and the target one of two (classes, or numbers in their own units)::

    kind       features            preprocessing            target
    image      ImageFeatures       ImagePreprocessing       ClassTarget
    table      TableFeatures       TablePreprocessing       ClassTarget | NumericTarget
    text       TextFeatures        TextPreprocessing        ClassTarget
    sequence   SequenceFeatures    SequencePreprocessing    NumericTarget (forecasting)

Example:
    >>> manifest = read_manifest(Path("data/mnist_demo/manifest.json"))
    >>> manifest.features.kind is FeatureKind.IMAGE, manifest.num_classes
    (True, 10)
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from dltrain.errors import DataError
from dltrain.recipe.data import (
    CategoryEncoding,
    ColumnType,
    DataFormat,
    Missing,
    Outliers,
    Sampling,
    Scaling,
    SeriesTransform,
    Standardize,
    TargetTransform,
    TextSplit,
)
from dltrain.tasks import Task

# 2: the typed contract below, and categories stored in the spelling predict parses them into.
MANIFEST_VERSION = 2


class FeatureKind(StrEnum):
    """What one example is, as the model's raw input takes it."""

    IMAGE = "image"  # (height, width, channels) pixels
    TABLE = "table"  # one raw value per source column
    TEXT = "text"  # one string
    SEQUENCE = "sequence"  # a window (lookback, features) of a time series


class _Part(BaseModel):
    # Unknown keys are errors: a manifest that says more than this reader knows was written by
    # another version, and guessing what it meant is how prepare and predict drift apart.
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- where the data came from ---------------------------------------------------------------


class SourceFile(_Part):
    name: str
    bytes: int
    sha256: str


class Source(_Part):
    path: str
    format: DataFormat
    files: list[SourceFile]
    fingerprint: str  # one digest over every file's entry: prepare reruns only when it changes


# --- the stored splits ----------------------------------------------------------------------


class Shard(_Part):
    file: str
    num_examples: int
    sha256: str


class Split(_Part):
    num_examples: int
    shards: list[Shard]
    class_counts: list[int] | None = None  # classification only


# --- features: what the model's raw inputs are ------------------------------------------------


class ImageFeatures(_Part):
    kind: Literal[FeatureKind.IMAGE] = FeatureKind.IMAGE
    shape: list[int]
    dtype: str


class TableColumn(_Part):
    """A raw input column of a table model (every source column but the target)."""

    name: str
    type: ColumnType
    dtype: Literal["float32", "string"]
    used: bool = True  # False: profiled and passed through by predict, never a feature
    # The model's input for the column (dltrain/input_names.py), unique and valid for Keras and
    # TensorFlow. None: prepared before dltrain named inputs so; its models take ``name``.
    # Optional rather than a version bump: those manifests, and the models trained on them,
    # stay right as they are.
    input_name: str | None = None

    @property
    def model_key(self) -> str:
        """The key of the column in the model's inputs."""
        return self.input_name or self.name


class TableFeatures(_Part):
    kind: Literal[FeatureKind.TABLE] = FeatureKind.TABLE
    columns: list[TableColumn]
    num_features: int  # width of the encoded vector (numbers, one-hot blocks, embeddings)

    @property
    def used(self) -> list[TableColumn]:
        return [c for c in self.columns if c.used]

    @property
    def passthrough(self) -> list[str]:
        """Columns the model takes but ignores (identifiers), which predict copies out."""
        return [c.name for c in self.columns if not c.used]

    @property
    def input_names(self) -> dict[str, str]:
        """Column name → the model's input name, for every column the model takes."""
        return {c.name: c.model_key for c in self.columns}


class TextFeatures(_Part):
    kind: Literal[FeatureKind.TEXT] = FeatureKind.TEXT
    column: str
    dtype: Literal["string"] = "string"
    vocabulary_size: int
    sequence_length: int


class SequenceFeatures(_Part):
    kind: Literal[FeatureKind.SEQUENCE] = FeatureKind.SEQUENCE
    shape: list[int]  # (lookback, number of window features)
    dtype: str = "float32"
    columns: list[str]
    time_column: str
    frequency: str | None = None


Features = Annotated[
    ImageFeatures | TableFeatures | TextFeatures | SequenceFeatures, Field(discriminator="kind")
]


# --- preprocessing fitted on the training split, rebuilt inside the model ---------------------


def _kind_tag(kind: FeatureKind) -> Any:
    # The feature kind a preprocessing block belongs to: set from `features.kind` when read and
    # left out of the JSON, which says it once, under `features`.
    return Field(kind, exclude=True)


class ImagePreprocessing(_Part):
    """``x * scale + offset`` is the scaled input."""

    kind: Literal[FeatureKind.IMAGE] = _kind_tag(FeatureKind.IMAGE)
    scaling: Scaling
    scale: float
    offset: float
    sampling: Sampling = Sampling.NONE
    # The raw [low, high] the scale was chosen from (data/pixels.py); manifests written before
    # it was recorded scaled 8-bit pixels.
    pixel_range: list[float] = Field(default_factory=lambda: [0.0, 255.0])

    def value_range(self) -> tuple[float, float]:
        """The range of scaled pixel values (what the raw ``pixel_range`` becomes)."""
        low, high = (v * self.scale + self.offset for v in self.pixel_range)
        return (min(low, high), max(low, high))


class NumericColumn(_Part):
    """One numeric column's fitted steps: fill, clip to [low, high], log, normalise."""

    column: str
    missing: Missing
    fill: float
    outliers: Outliers
    low: float
    high: float
    scaling: Scaling
    log: bool
    shift: float
    mean: float
    variance: float
    train_min: float | None = None
    train_max: float | None = None
    train_missing: int
    expression: str | None = None  # a derived column, recomputed from raw inputs in the model
    # The scaled training values' quantiles at 0, 1/64, ..., 1 (``QUANTILE_POINTS``): the bin
    # edges of piecewise-linear embeddings. None in manifests written before they were kept.
    quantiles: list[float] | None = None


class CategoricalColumn(_Part):
    """One category column's vocabulary and the index mapping its lookup goes through."""

    column: str
    missing: Missing
    vocabulary: list[str]  # known values (most frequent first), then the missing markers
    mapping: list[int]  # lookup index → one-hot index (0 is out of vocabulary)
    num_tokens: int
    out_of_vocabulary: int
    train_missing: int
    most_frequent: str | None = None
    # How the model encodes it (never auto: prepare resolves that from num_tokens) and, for an
    # embedding, its width. Defaults rather than a version bump: earlier manifests were one-hot.
    encoding: CategoryEncoding = CategoryEncoding.ONE_HOT
    embedding_dim: int | None = None

    @property
    def width(self) -> int:
        """How many numbers the column becomes in the encoded row."""
        embedded = self.encoding == CategoryEncoding.EMBEDDING and self.embedding_dim
        return self.embedding_dim if embedded and self.embedding_dim else self.num_tokens


class TablePreprocessing(_Part):
    kind: Literal[FeatureKind.TABLE] = _kind_tag(FeatureKind.TABLE)
    numeric: list[NumericColumn] = []
    categorical: list[CategoricalColumn] = []
    sampling: Sampling = Sampling.NONE


class TextBag(_Part):
    """A text's second view (``data.text.bag``): the vocabulary of a bag beside the encoder,
    how texts split into its entries, and each entry's idf on the training texts."""

    vocabulary: list[str]
    standardize: Standardize
    split: TextSplit
    ngrams: int
    idf: list[float]


class TextPreprocessing(_Part):
    kind: Literal[FeatureKind.TEXT] = _kind_tag(FeatureKind.TEXT)
    vocabulary: list[str]
    standardize: Standardize
    sequence_length: int
    sampling: Sampling = Sampling.NONE
    split: TextSplit = TextSplit.WHITESPACE  # tokens are words or characters (data.text.split)
    ngrams: int = 1  # the vocabulary holds token n-grams up to this length (data.text.ngrams)
    # Of each vocabulary entry, log(1 + texts / (1 + training texts holding it)): the bag
    # encoder's tf_idf weights. None in data prepared before dltrain recorded it.
    idf: list[float] | None = None
    bag: TextBag | None = None  # data.text.bag: a bag of other n-grams beside the encoder


class SequencePreprocessing(_Part):
    kind: Literal[FeatureKind.SEQUENCE] = _kind_tag(FeatureKind.SEQUENCE)
    mean: list[float]
    variance: list[float]
    sampling: Sampling = Sampling.NONE


Preprocessing = Annotated[
    ImagePreprocessing | TablePreprocessing | TextPreprocessing | SequencePreprocessing,
    Field(discriminator="kind"),
]


# --- the target -----------------------------------------------------------------------------


class ClassTarget(_Part):
    classes: list[str]
    num_classes: int
    class_weights: list[float]  # balanced weights from the training split's counts
    column: str | None = None  # tables; class folders and arrays have no target column

    @property
    def names(self) -> list[str]:
        return [self.column] if self.column else []


class TargetTransformFit(_Part):
    """``data.target_transform``: what the network learns instead of the target, per column.

    The network predicts the transformed value standardised with ``mean`` and ``std`` (those of
    the transformed training values); its last layers turn that back into the target's units,
    and the loss compares targets and predictions after the transform (models/io.py,
    training/losses.py).
    """

    name: TargetTransform
    mean: list[float]
    std: list[float]


class NumericTarget(_Part):
    """Regression and forecasting targets, with the training split's statistics."""

    columns: list[str]
    mean: list[float]
    std: list[float]
    min: list[float]  # the training range: `model.clip_to_target_range` keeps predictions in it
    max: list[float]
    horizon: int | None = None  # forecasting only
    lookback: int | None = None
    # Optional rather than a version bump: absent, the target is learnt as it is.
    transform: TargetTransformFit | None = None

    @property
    def names(self) -> list[str]:
        return list(self.columns)


def _target_kind(value: Any) -> str:
    has_classes = "classes" in value if isinstance(value, dict) else hasattr(value, "classes")
    return "classes" if has_classes else "numbers"


Target = Annotated[
    Annotated[ClassTarget, Tag("classes")] | Annotated[NumericTarget, Tag("numbers")],
    Discriminator(_target_kind),
]


# --- what cleaning did, and the series' shape ----------------------------------------------


class FilledColumn(_Part):
    column: str
    missing: int
    missing_in_train: int
    strategy: Missing
    fill: float | str | None = None
    clip: list[float] | None = None
    where: str | None = None  # "prepare" when filled in the stored data, not in the model


class Cleaning(_Part):
    dropped_rows: dict[str, int] = {}
    filled: list[FilledColumn] = []
    notes: list[str] = []
    duplicates: str = "reported"


class SeriesLayout(_Part):
    steps: int
    split_steps: dict[str, int]
    windows: dict[str, int]
    start: str
    end: str
    # Steps in one season (recipe's series.season, else from the time step); None: no season.
    season: int | None = None
    # What the network learns (recipe's series.transform); older datasets: the level (none).
    transform: SeriesTransform = SeriesTransform.NONE
    # With a transform, from the training windows: per target, the linear trend's slope per step
    # (detrend), the root mean square of each window step's value less the window's last value
    # (the inputs' scale), and per horizon step and target that of the target less the simple
    # forecast (the network's output scale).
    trend_slope: list[float] | None = None
    window_rms: list[float] | None = None
    residual_rms: list[list[float]] | None = None


# --- the manifest -----------------------------------------------------------------------------

P = TypeVar("P", bound=BaseModel)
V = TypeVar("V")  # examples: an array, or a dict of one array per table column


class DatasetDescription(_Part):
    """What a preparation path found and wrote: the manifest less the dataset's identity.

    ``prepare`` adds where the data came from and the recipe it was prepared with to make the
    :class:`Manifest`; the checks that tie the parts together run here, so a preparation path
    cannot describe a dataset no later command could read back.
    """

    task: Task
    features: Features
    target: Target
    preprocessing: Preprocessing
    splits: dict[str, Split]
    source_splits: list[str]  # the splits the source shipped (train, and test when it had one)
    cleaning: Cleaning = Cleaning()
    series: SeriesLayout | None = None

    @model_validator(mode="before")
    @classmethod
    def _preprocessing_of_the_feature_kind(cls, data: Any) -> Any:
        """Read ``preprocessing`` as the class ``features.kind`` names, so a union member is
        never guessed from the keys it happens to have (and errors name the right fields)."""
        if not isinstance(data, dict):
            return data
        features, preprocessing = data.get("features"), data.get("preprocessing")
        if isinstance(features, dict) and isinstance(preprocessing, dict):
            return {**data, "preprocessing": {"kind": features.get("kind"), **preprocessing}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.task.is_classification != isinstance(self.target, ClassTarget):
            raise ValueError(f"a {self.task.value} task with a {type(self.target).__name__}")
        # Read from JSON the kinds always agree (see above); built from typed parts they may not.
        if self.preprocessing.kind != self.features.kind:
            raise ValueError(
                f"{self.features.kind.value} features with {self.preprocessing.kind.value} "
                f"preprocessing"
            )
        return self


class Manifest(DatasetDescription):
    """Everything a later command needs to know about a prepared dataset: its description,
    plus where it came from and what it was prepared with."""

    manifest_version: int = MANIFEST_VERSION  # parse_manifest refuses any other
    created: str
    dltrain_version: str
    source: Source
    data_spec_digest: str  # digest of the recipe's data section and seed: a change re-prepares
    seed: int

    def model_inputs(self, x: V) -> V:
        """Examples keyed as the model takes them: a table's dict of columns re-keyed from
        column names to input names (``TableColumn.input_name``); anything else as it is.

        Every place that hands rows to a model calls this; readers and users keep column names.
        """
        features = self.features
        if not isinstance(x, dict) or not isinstance(features, TableFeatures):
            return x
        names = features.input_names
        renamed: Any = {names.get(k, k): v for k, v in x.items()}
        return cast(V, renamed)

    # Typed views for the consumers of one kind; a mismatch is a bug in the caller's dispatch.

    def preprocessing_as(self, kind: type[P]) -> P:
        """``preprocessing`` as ``kind``.

        Raises:
            DataError: the dataset's preprocessing is of another kind.
        """
        return _as(self.preprocessing, kind, f"{self.features.kind.value} data")

    def target_as(self, kind: type[P]) -> P:
        """``target`` as ``kind`` (:class:`ClassTarget` or :class:`NumericTarget`).

        Raises:
            DataError: the dataset's target is of the other kind.
        """
        return _as(self.target, kind, f"a {self.task.value} task")

    @property
    def classes(self) -> list[str]:
        return list(self.target.classes) if isinstance(self.target, ClassTarget) else []

    @property
    def num_classes(self) -> int:
        return self.target.num_classes if isinstance(self.target, ClassTarget) else 0

    @property
    def target_names(self) -> list[str]:
        """The source's target column(s): empty for class folders and arrays."""
        return self.target.names

    @property
    def sampling(self) -> Sampling:
        return self.preprocessing.sampling

    def num_examples(self, split: str) -> int:
        return self.splits[split].num_examples

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to ``manifest.json``."""
        return self.model_dump(mode="json", exclude_none=True)


def _as(value: BaseModel, kind: type[P], what: str) -> P:
    if not isinstance(value, kind):
        raise DataError(
            f"This prepared dataset holds {what}, which has no {kind.__name__}. The recipe's "
            f"model or settings do not fit the data; check `model.family` and `data`."
        )
    return value


def parse_manifest(data: Any, where: Path) -> Manifest:
    """Validate a manifest's JSON document.

    Raises:
        DataError: it was written by another version of dltrain, or is not a manifest.
    """
    version = data.get("manifest_version") if isinstance(data, dict) else None
    if version != MANIFEST_VERSION:
        raise DataError(
            f"{where} has manifest version {version!r}; this dltrain reads version "
            f"{MANIFEST_VERSION} (the data was prepared by another version of dltrain). Rebuild "
            f"it with `dltrain prepare --force`."
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"])
        raise DataError(
            f"{where} is not a valid prepared-dataset manifest ({place}: {first['msg']}; "
            f"{exc.error_count()} problem(s) in all). It was edited or written by another "
            f"version of dltrain; rebuild it with `dltrain prepare --force`."
        ) from None


def read_manifest(path: Path) -> Manifest:
    """Read and validate ``manifest.json``.

    Raises:
        DataError: unreadable, from another version, or not a manifest.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path} is unreadable ({exc}). Rebuild the dataset with `dltrain prepare --force`."
        ) from None
    return parse_manifest(data, path)
