"""The recipe's `data` section: where the raw data is, how to read, clean, split and encode it.

Light (no TensorFlow, no pandas): the CLI validates recipes with it. Every setting has a default
that suits a first run; `dltrain init` writes the ones it inferred so they can be read and pinned.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from dltrain.recipe.section import Section
from dltrain.tasks import Task


class DataFormat(StrEnum):
    AUTO = "auto"
    IDX = "idx"  # MNIST-family folders of IDX files
    NPZ = "npz"  # numpy archives (keras.datasets layout)
    CSV = "csv"  # any delimited text table (CSV, TSV, …)
    PARQUET = "parquet"
    IMAGES = "images"  # class folders of images: [train/]<class>/*.jpg|png
    TEXT = "text"  # class folders of .txt files


class Scaling(StrEnum):
    """How numbers are rescaled; the statistics come from the training split and live in the
    model's first layers."""

    NONE = "none"
    UNIT = "unit"  # [0, 1]
    SYMMETRIC = "symmetric"  # [-1, 1]
    STANDARD = "standard"  # mean 0, variance 1
    LOG = "log"  # log(1 + x - min), then standardised: for long-tailed counts (tables only)


class TargetTransform(StrEnum):
    """What a numeric target is learnt as; the model turns its predictions back, so they,
    the metrics and every later command stay in the target's own units."""

    NONE = "none"  # the target as it is (standardised with the training split's statistics)
    LOG = "log"  # log(y) (every value > 0): for multiplicative, long-tailed values (prices)


class ColumnType(StrEnum):
    AUTO = "auto"
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    TEXT = "text"
    DATETIME = "datetime"
    IDENTIFIER = "identifier"  # profiled, never a feature
    IGNORE = "ignore"  # not read as a feature


class Missing(StrEnum):
    """What replaces a missing value (or what happens to its row)."""

    AUTO = "auto"  # the column kind's default in `clean`
    DROP_ROW = "drop_row"
    MEAN = "mean"
    MEDIAN = "median"
    MOST_FREQUENT = "most_frequent"
    CONSTANT = "constant"  # `fill_value`; for categories, missing becomes a category of its own
    FFILL = "ffill"  # time series only
    BFILL = "bfill"
    INTERPOLATE = "interpolate"


class SeriesTransform(StrEnum):
    """What a forecaster's network learns: a correction to a simple forecast, or the level.

    Each but ``none`` also shows the network the target columns of a window relative to the
    window's last value, so a series that trends out of its training range still looks familiar.
    """

    NONE = "none"  # the target's level, standardised with the training split's mean and std
    DIFFERENCE = "difference"  # the change from the window's last value (naive forecast + residual)
    SEASONAL_DIFFERENCE = "seasonal_difference"  # the change from the value one season before
    DETREND = "detrend"  # the departure from the last value continued along the training trend


class CategoryEncoding(StrEnum):
    """How a category column enters the model; the layers live in the model, which takes the
    raw strings."""

    AUTO = "auto"  # embedding above EMBEDDING_THRESHOLD one-hot slots, one-hot below
    ONE_HOT = "one_hot"  # one 0/1 slot per value (plus out-of-vocabulary and missing)
    EMBEDDING = "embedding"  # a trained vector per value, `embedding_dim` wide


# `auto` embeds a column whose one-hot block would be wider than this. Below it a one-hot block
# is cheap and the first dense layer already learns a vector per value (one-hot times a kernel
# is an embedding as wide as the layer); above it most values are rare, and a narrower trained
# vector (14 wide at 50 values by the width rule) shares what the rare values say through
# fewer weights. Every reference table keeps its columns one-hot under it (Adult's widest has
# 42 values).
EMBEDDING_THRESHOLD = 50


class Outliers(StrEnum):
    NONE = "none"
    ZSCORE = "zscore"  # clip to mean ± zscore_threshold · std of the training split
    IQR = "iqr"  # clip to [Q1 − k·IQR, Q3 + k·IQR] of the training split


class Duplicates(StrEnum):
    KEEP = "keep"
    DROP = "drop"  # keep the first of identical rows


class SplitMethod(StrEnum):
    AUTO = "auto"  # stratified for classes, time order for series, random otherwise
    RANDOM = "random"
    STRATIFIED = "stratified"
    TIME = "time"  # earliest rows train, then validation, then test (by `split.column`)
    GROUP = "group"  # rows sharing a `split.column` value stay in one split
    HASH = "hash"  # split by a hash of `split.column`: stable as rows are added


class Sampling(StrEnum):
    NONE = "none"
    OVERSAMPLE = "oversample"  # repeat minority-class rows of the training split
    UNDERSAMPLE = "undersample"  # drop majority-class rows of the training split


class TextSplit(StrEnum):
    WHITESPACE = "whitespace"
    CHARACTER = "character"


class Standardize(StrEnum):
    LOWER_AND_STRIP_PUNCTUATION = "lower_and_strip_punctuation"
    LOWER = "lower"
    NONE = "none"


DEFAULT_MISSING_VALUES = ["", "?", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "-"]


class CsvSpec(Section):
    """How to read a delimited text file; `auto` settings are sniffed from its first lines."""

    delimiter: str = Field(
        "auto", description="auto, or one character such as ',', '\\t', ';' or '|'."
    )
    header: bool | None = Field(None, description="Whether the first row names the columns.")
    column_names: list[str] | None = Field(
        None, description="Column names for a file without a header row."
    )
    skip_rows: int = Field(0, ge=0, description="Lines to skip before the first row.")
    quoting: bool = Field(
        True, description="false reads '\"' as an ordinary character (unbalanced quotes)."
    )
    encoding: str = Field(
        "auto",
        description="auto: UTF-8, else Windows-1252 (a superset of Latin-1), said in the "
        "profile's notes; or any Python codec name (latin-1, utf-16, shift_jis, …).",
    )
    missing_values: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MISSING_VALUES),
        description="Cell values that mean 'missing' (after stripping spaces).",
    )

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        value = {"\\t": "\t", "tab": "\t"}.get(value, value)
        if value != "auto" and len(value) != 1:
            raise ValueError(
                f"the delimiter must be 'auto' or a single character such as ',' or '\\t'. "
                f"Received: {value!r}"
            )
        return value


class TestSourceSpec(Section):
    """The source's own test file, read like `source`; relative paths are read from the folder
    of `source`."""

    path: Path
    skip_rows: int | None = Field(
        None, ge=0, description="Lines to skip in this file (default: csv.skip_rows)."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str | Path) else value


class ColumnSpec(Section):
    type: ColumnType = ColumnType.AUTO
    missing: Missing = Missing.AUTO
    fill_value: float | str | None = Field(None, description="The value `missing: constant` uses.")
    scaling: Scaling | None = Field(None, description="Default: data.numeric_scaling.")
    outliers: Outliers | None = Field(None, description="Default: data.clean.outliers.")
    encoding: CategoryEncoding | None = Field(
        None,
        description="Category columns: one_hot, embedding or auto (default: "
        "data.categorical_encoding).",
    )
    embedding_dim: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Width of an embedded column's vectors (default: min(50, round(1.6 n^0.56)) "
        "for n one-hot slots, fastai's rule).",
    )

    @model_validator(mode="after")
    def _width_needs_an_embedding(self) -> ColumnSpec:
        if self.embedding_dim is not None and self.encoding == CategoryEncoding.ONE_HOT:
            raise ValueError(
                "embedding_dim sets the width of an embedded category column, but encoding is "
                "one_hot. Set encoding: embedding (or auto), or remove embedding_dim. Received: "
                f"encoding=one_hot, embedding_dim={self.embedding_dim}"
            )
        return self


class CleanSpec(Section):
    numeric_missing: Missing = Field(
        Missing.MEDIAN, description="Default for numeric columns: median, mean, constant, drop_row."
    )
    categorical_missing: Missing = Field(
        Missing.CONSTANT,
        description="Default for categories: constant (missing is a category of its own), "
        "most_frequent or drop_row.",
    )
    duplicates: Duplicates = Duplicates.DROP
    outliers: Outliers = Outliers.NONE
    zscore_threshold: float = Field(3.0, gt=0)
    iqr_multiplier: float = Field(1.5, gt=0)


class ChecksSpec(Section):
    """Data-quality bars. A breached threshold fails prepare (exit 1); with `strict` (or
    --strict) every profile warning does."""

    strict: bool = False
    max_missing: float | None = Field(None, ge=0, le=1, description="Largest missing share.")
    max_duplicates: float | None = Field(None, ge=0, le=1, description="Largest duplicate share.")
    min_class_share: float | None = Field(
        None, gt=0, lt=1, description="Smallest share of any class of the target."
    )
    allow_leakage: bool = Field(
        True, description="false fails when identical rows sit in two splits."
    )


# A batch of 32 RGB images of 4096×4096 is already 6 GiB as float32; the pixels of a whole
# folder at [100000, 100000] asked for hundreds of GiB before a clear error could be given.
MAX_IMAGE_SIDE = 4096


class ImageSpec(Section):
    size: list[int] | None = Field(
        None, description="[height, width] every image is resized to (default: the first's)."
    )
    channels: int | None = Field(None, description="1 or 3 (default: 3 if any image has colour).")

    @field_validator("size")
    @classmethod
    def _two_positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) != 2 or min(value) < 1):
            raise ValueError(f"size is [height, width], both > 0. Received: {value}")
        if value is not None and max(value) > MAX_IMAGE_SIDE:
            raise ValueError(
                f"size is [height, width], each at most {MAX_IMAGE_SIDE}: a batch of larger "
                f"images does not fit an accelerator; downscale or tile them. Received: {value}"
            )
        return value

    @field_validator("channels")
    @classmethod
    def _one_or_three(cls, value: int | None) -> int | None:
        if value not in (None, 1, 3):
            raise ValueError(f"channels must be 1 or 3. Received: {value}")
        return value


class TextBagSpec(Section):
    """``data.text.bag``: the n-grams of a bag beside the model's encoder (``model.bag_mode``
    weighs them). Its defaults are character 1-5-grams, which catch what a word vocabulary
    cannot: misspellings, numbers and words never seen whole in training."""

    max_tokens: int = Field(50_000, ge=10, description="Bag entries, the OOV entry included.")
    standardize: Standardize = Standardize.LOWER
    split: TextSplit = Field(TextSplit.CHARACTER, description="whitespace (words) or character.")
    ngrams: int = Field(5, ge=1, le=5, description="The bag holds 1- to ngrams-grams of tokens.")


class TextSpec(Section):
    max_tokens: int = Field(20_000, ge=10, description="Vocabulary size, padding and OOV included.")
    sequence_length: int | None = Field(
        None, gt=0, description="Tokens per text (default: 95th percentile of training texts)."
    )
    standardize: Standardize = Standardize.LOWER_AND_STRIP_PUNCTUATION
    split: TextSplit = Field(
        TextSplit.WHITESPACE,
        description="Tokens: whitespace (words) or character (each character, spaces included; "
        "with ngrams, character n-grams, for the bag encoder).",
    )
    ngrams: int = Field(
        1,
        ge=1,
        le=5,
        description="N-grams of tokens in the vocabulary: 1 tokens only; 2 tokens and adjacent "
        "pairs; 3 also triples, and so on (for the bag encoder).",
    )
    bag: TextBagSpec | None = Field(
        None,
        description="A second view of each text: a bag of these n-grams (a vocabulary of its "
        "own, fitted by prepare), concatenated to the encoder's output before the dense layers.",
    )


class CalendarFeature(StrEnum):
    """A cycle of the calendar, added to every window step as its sine and cosine."""

    DAY_OF_YEAR = "day_of_year"  # the seasons: period 365.25 days
    DAY_OF_WEEK = "day_of_week"  # period 7 days
    TIME_OF_DAY = "time_of_day"  # period 24 hours


class SeriesSpec(Section):
    """Forecasting: windows of `lookback` steps predict the `horizon` steps after them."""

    time_column: str | None = Field(None, description="Default: the table's datetime column.")
    lookback: int = Field(30, gt=0)
    horizon: int = Field(1, gt=0)
    features: list[str] | None = Field(
        None, description="Input columns (default: every numeric column, targets included)."
    )
    stride: int = Field(1, gt=0, description="Steps between the starts of two windows.")
    season: int | None = Field(
        None,
        gt=1,
        description="Steps in one season, for seasonal baselines and differencing. Default: from "
        "the time step (hourly 24, daily 7, weekly 52, monthly 12, quarterly 4; none otherwise).",
    )
    transform: SeriesTransform = Field(
        SeriesTransform.DIFFERENCE,
        description="What the network learns, inside the model (raw windows in, forecasts in the "
        "target's units out): difference (the change from the window's last value: a residual on "
        "the naive forecast), seasonal_difference (the change from one season before), detrend "
        "(the departure from the last value continued along a linear trend fitted on the "
        "training steps), none (the level).",
    )
    fill_gaps: bool = Field(
        True, description="Insert the missing time steps of a regular series, then fill them."
    )
    missing: Missing = Field(Missing.INTERPOLATE, description="interpolate, ffill, bfill.")
    calendar: list[CalendarFeature] = Field(
        default_factory=list,
        description="Calendar cycles added as input features (<name>_sin, <name>_cos per step), "
        "computed from the time column: day_of_year, day_of_week, time_of_day.",
    )

    @field_validator("calendar")
    @classmethod
    def _calendar_once(cls, value: list[CalendarFeature]) -> list[CalendarFeature]:
        repeated = sorted({c.value for c in value if value.count(c) > 1})
        if repeated:
            raise ValueError(
                f"series.calendar names {', '.join(repeated)} more than once; list each cycle "
                f"once. Received: {[c.value for c in value]}"
            )
        return value

    @field_validator("missing")
    @classmethod
    def _series_strategy(cls, value: Missing) -> Missing:
        if value not in (Missing.INTERPOLATE, Missing.FFILL, Missing.BFILL, Missing.DROP_ROW):
            raise ValueError(
                f"series.missing must be interpolate, ffill, bfill or drop_row. Received: "
                f"{value.value}"
            )
        return value


class SplitSpec(Section):
    method: SplitMethod = SplitMethod.AUTO
    validation: float = Field(
        0.1, gt=0, lt=1, description="Share of the training pool held out for validation."
    )
    test: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="Share held out for test; used only when the source has no test set.",
    )
    stratify: bool = Field(True, description="Keep class proportions equal across splits.")
    column: str | None = Field(None, description="The time, group or hash key column.")

    @model_validator(mode="after")
    def _leave_something_to_train(self) -> SplitSpec:
        if self.validation + self.test >= 0.9:
            raise ValueError(
                f"validation + test must leave at least 10% to train on. "
                f"Received: validation={self.validation}, test={self.test}"
            )
        if self.method in (SplitMethod.GROUP, SplitMethod.HASH) and not self.column:
            raise ValueError(
                f"split method {self.method.value} needs `split.column`, the key column. "
                f"Received: column=None"
            )
        return self


class DataSpec(Section):
    source: Path = Field(
        description="File or folder holding the raw data; relative paths are read from the "
        "recipe file's folder."
    )
    format: DataFormat = DataFormat.AUTO
    test_source: TestSourceSpec | None = None
    target: str | list[str] | None = Field(
        None, description="The column(s) to predict (tables and series)."
    )
    task: Task | None = Field(None, description="Inferred from the target when unset.")
    target_transform: TargetTransform = Field(
        TargetTransform.NONE,
        description="Regression on tables: learn the target as log(y) (every value > 0), the "
        "loss computed on that scale; the model predicts in the target's own units.",
    )
    csv: CsvSpec = Field(default_factory=CsvSpec)
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)
    derived: dict[str, str] = Field(
        default_factory=dict,
        description="Tables: new numeric columns computed from numeric source columns, e.g. "
        "{rooms_per_household: total_rooms / households}; column names, numbers, + - * / and "
        "parentheses. Computed inside the model too, so it still takes raw rows.",
    )
    clean: CleanSpec = Field(default_factory=CleanSpec)
    numeric_scaling: Scaling = Scaling.STANDARD
    max_categories: int = Field(
        100,
        ge=1,
        description="Most frequent values kept per category column; the rest share "
        "the out-of-vocabulary bucket.",
    )
    categorical_encoding: CategoryEncoding = Field(
        CategoryEncoding.AUTO,
        description="How category columns enter the model: one_hot, embedding, or auto "
        f"(embedding when the one-hot block would be wider than {EMBEDDING_THRESHOLD}).",
    )
    split: SplitSpec = Field(default_factory=SplitSpec)
    sampling: Sampling = Sampling.NONE
    shard_rows: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="Rows (examples) per prepared shard; default: 100,000, fewer where they pass "
        "16 MiB in memory. Smaller shards let more workers each read their own files.",
    )
    checks: ChecksSpec = Field(default_factory=ChecksSpec)
    image: ImageSpec = Field(default_factory=ImageSpec)
    text: TextSpec = Field(default_factory=TextSpec)
    series: SeriesSpec | None = None
    scaling: Scaling = Field(Scaling.UNIT, description="Pixel scaling of images.")
    pixel_range: list[float] | None = Field(
        None,
        description="[low, high]: the raw pixel values `scaling` maps from (default: read from "
        "the training split: 8-bit 0-255, small integers 0-their maximum, floats in [0, 1] kept).",
    )
    classes: list[str] | None = Field(
        None, description="Names of the classes, in label order (labels 0, 1, …) for reports."
    )

    @property
    def targets(self) -> list[str]:
        """The target column(s) as a list (empty for sources whose labels are built in)."""
        if self.target is None:
            return []
        return [self.target] if isinstance(self.target, str) else list(self.target)

    @field_validator("pixel_range")
    @classmethod
    def _low_below_high(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (len(value) != 2 or not value[0] < value[1]):
            raise ValueError(
                f"pixel_range is [low, high] with low < high, e.g. [0, 255] for 8-bit pixels. "
                f"Received: {value}"
            )
        return value

    @field_validator("derived")
    @classmethod
    def _derived_expressions(cls, value: dict[str, str]) -> dict[str, str]:
        from dltrain.recipe.expressions import ExpressionError, parse_expression

        for name, text in value.items():
            if not name.strip():
                raise ValueError(f"a derived column needs a name. Received: {value}")
            try:
                parse_expression(str(text))
            except ExpressionError as error:
                raise ValueError(f"derived column {name!r}: {error}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DataSpec:
        if self.derived and self.series is not None:
            raise ValueError(
                "`derived` columns are for tables; a series recipe (`series`) reads its columns "
                "as they are. Remove `derived`, or `series` to train on rows."
            )
        if self.scaling == Scaling.LOG:
            raise ValueError(
                "`scaling` (pixels) takes none, unit, symmetric or standard; log is for table "
                "columns (`numeric_scaling`). Received: scaling=log"
            )
        if self.target_transform != TargetTransform.NONE:
            _check_target_transform(self)
        if self.task == Task.FORECASTING and self.series is None:
            raise ValueError(
                "task forecasting needs a `series` section (lookback, horizon, time_column). "
                "Received: series=None"
            )
        return self


def _check_target_transform(spec: DataSpec) -> None:
    """Refuse a target transform where there is no regression table to apply it to."""
    if spec.series is not None:
        fix = "(a forecaster learns its target relative to a simple forecast: `series.transform`)"
        what = "a series recipe (`series`)"
    elif spec.task is not None and spec.task != Task.REGRESSION:
        fix = "or set `task: regression` to predict the number"
        what = f"task {spec.task.value}"
    else:
        return
    raise ValueError(
        f"`target_transform` {spec.target_transform.value} transforms the numeric target of a "
        f"regression table, but this is {what}. Remove `target_transform` {fix}."
    )
