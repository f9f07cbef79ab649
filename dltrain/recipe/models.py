"""The recipe's `model` section: one class per family, told apart by `family`.

Fields every family shares (activation, dropout, batch norm, L1/L2) live in `ModelBase`; the
builders in dltrain/models/ read these classes and nothing else.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from dltrain.recipe.section import Section

# The widest layer a recipe may ask for: 128 times the widest reference recipe's (512). Wider is
# a slip (`dense: [1e11]`), and building it would try to allocate terabytes before anything
# could measure the model; `train --dry-run` measures what passes (training/dryrun.py).
MAX_WIDTH = 65_536


def _bounded_width(value: int) -> int:
    if value > MAX_WIDTH:
        raise ValueError(
            f"a layer width is at most {MAX_WIDTH:,} (one dense layer that wide on as many "
            f"inputs already holds {MAX_WIDTH**2 / 1e9:.1f} billion weights, "
            f"{MAX_WIDTH**2 * 4 / 2**30:.0f} GiB). Received: {value:,}; lower it (64 to 1,024 "
            f"fit most models here)"
        )
    return value


# A layer's width (units, filters, an embedding's size): positive and at most MAX_WIDTH.
Width = Annotated[int, Field(gt=0), AfterValidator(_bounded_width)]
Widths = list[Width]


class Activation(StrEnum):
    RELU = "relu"
    LEAKY_RELU = "leaky_relu"
    ELU = "elu"
    SELU = "selu"
    GELU = "gelu"
    SWISH = "swish"
    TANH = "tanh"
    SIGMOID = "sigmoid"


class ModelBase(Section):
    activation: Activation = Activation.RELU
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout before the output layer.")
    batch_norm: bool = False
    batch_norm_momentum: float = Field(
        0.9,
        gt=0,
        lt=1,
        description="Moving-average momentum of batch norm. 0.9 rather than Keras's 0.99: the "
        "statistics settle in tens of steps, not hundreds, which short runs need.",
    )
    l1: float = Field(0.0, ge=0, description="L1 penalty on the weights of conv and dense layers.")
    l2: float = Field(0.0, ge=0, description="L2 penalty on the weights of conv and dense layers.")


class PredictorBase(ModelBase):
    """Families that end in the task's own output head (models/io.py ``head``): they predict
    the target. The autoencoder and the GAN do not."""

    clip_to_target_range: bool = Field(
        False,
        description="Regression and forecasting: clip predictions to the target's range in the "
        "training split, inside the model (training itself sees unclipped outputs). For a capped "
        "target (California house values stop at $500,001) no prediction beyond the cap can be "
        "right.",
    )


class CropSpec(Section):
    """Pad each side, then crop a random window of the input's size (the CIFAR recipes' crop)."""

    padding: int = Field(
        4, ge=1, le=64, description="Pixels added on each side (black) before the random crop."
    )


class MixSpec(Section):
    """A mixing weight drawn from Beta(alpha, alpha) per example."""

    alpha: float = Field(
        gt=0,
        le=10,
        description="Beta(alpha, alpha) shape: small alphas keep most examples nearly whole "
        "(MixUp's 0.2), 1.0 draws the weight uniformly (CutMix's).",
    )


class AugmentationSpec(Section):
    """Random image transformations, applied in training only.

    flip … crop are Keras layers inside the model, idle at inference. ``mixup`` and ``cutmix``
    blend pairs of training examples and their labels in the input pipeline (models/mixing.py):
    classification only, with class-probability targets; validation and test are never mixed.
    """

    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = "none"
    rotation: float = Field(0.0, ge=0, le=1, description="Fraction of a full turn, either way.")
    zoom: float = Field(0.0, ge=0, lt=1, description="Fraction of the size, in or out.")
    translation: float = Field(0.0, ge=0, lt=1, description="Fraction of the size, any direction.")
    contrast: float = Field(0.0, ge=0, lt=1, description="Contrast factor range, 1 ± contrast.")
    crop: CropSpec | None = Field(None, description="Random crop after padding (null: none).")
    mixup: MixSpec | None = Field(
        None, description="MixUp (Zhang et al. 2018): blend two images and their labels."
    )
    cutmix: MixSpec | None = Field(
        None,
        description="CutMix (Yun et al. 2019): paste a box of another image; labels mixed by "
        "area. With mixup too, each example gets one of the two, chosen at random.",
    )

    @property
    def mixes(self) -> bool:
        """Whether training blends examples, so its labels are class probabilities."""
        return self.mixup is not None or self.cutmix is not None


class NumericEmbeddingKind(StrEnum):
    PERIODIC = "periodic"
    PIECEWISE_LINEAR = "piecewise_linear"


MAX_EMBEDDING_BINS = 64  # the quantiles prepare keeps per column (data/transforms.py)


class NumericEmbeddingSpec(Section):
    """Embeddings of a table's numbers (Gorishniy et al. 2022, "PLR" and "Q-LR").

    Each numeric column x becomes relu(W e(x) + b), with its own W, before the hidden layers,
    where e(x) is either periodic, [sin(2 pi c x), cos(2 pi c x)] with trainable frequencies c,
    or piecewise linear: one entry per bin between the training split's quantiles, 0 below the
    bin, 1 above it, and the position inside it. An MLP then fits sharp, non-monotone effects
    of one column (latitude and longitude, capital gains) that a plain dense layer on the
    standardised number approximates poorly.
    """

    kind: NumericEmbeddingKind = Field(
        NumericEmbeddingKind.PERIODIC,
        description="periodic: trainable frequencies; piecewise_linear: bins between the "
        "training split's quantiles (fixed at prepare).",
    )
    frequencies: Width = Field(16, description="periodic: trainable frequencies per column.")
    bins: int = Field(
        48,
        ge=2,
        le=MAX_EMBEDDING_BINS,
        description="piecewise_linear: bins per column, between equally spaced quantiles (a "
        "column with fewer distinct values gets fewer).",
    )
    dim: Width = Field(16, description="Width of each column's embedding.")
    scale: float = Field(
        0.1,
        gt=0,
        description="periodic: standard deviation of the initial frequencies (inputs are "
        "standardised); larger values let the first epochs fit finer detail.",
    )

    @model_validator(mode="after")
    def _keys_of_its_kind(self) -> NumericEmbeddingSpec:
        # a key of the other kind would be silently ignored: the recipe would not say what runs.
        # Its default is no slip: a run's resolved recipe.yaml spells out every key.
        other = {
            NumericEmbeddingKind.PERIODIC: {"bins"},
            NumericEmbeddingKind.PIECEWISE_LINEAR: {"frequencies", "scale"},
        }[self.kind]
        fields = type(self).model_fields
        stray = sorted(
            key
            for key in other & self.model_fields_set
            if getattr(self, key) != fields[key].default
        )
        if stray:
            raise ValueError(
                f"{', '.join(stray)} set {'does' if len(stray) == 1 else 'do'} nothing for "
                f"kind: {self.kind.value} (frequencies and scale shape periodic embeddings, "
                f"bins piecewise-linear ones). Remove {', '.join(stray)}, or set the kind "
                f"{'they belong' if len(stray) > 1 else 'it belongs'} to."
            )
        return self


class MlpSpec(PredictorBase):
    family: Literal["mlp"] = "mlp"
    units: Widths = Field(
        default_factory=lambda: [256, 128], min_length=1, description="Width of each hidden layer."
    )
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout after each hidden layer.")
    numeric_embedding: NumericEmbeddingSpec | None = Field(
        None,
        description="Tables: embed each numeric column, periodically or piecewise linearly "
        "(null: raw numbers).",
    )
    ensemble: int = Field(
        1,
        ge=1,
        le=32,
        description="Towers (numeric embedding, hidden layers, output) built side by side on the "
        "same preprocessed inputs and averaged inside one model; 1: a single network.",
    )


class CnnSpec(PredictorBase):
    family: Literal["cnn"] = "cnn"
    filters: Widths = Field(
        default_factory=lambda: [32, 64],
        min_length=1,
        description="Filters of each conv block; each block is conv → (BN) → act → max-pool.",
    )
    kernel_size: int = Field(3, gt=0)
    padding: Literal["same", "valid"] = Field(
        "same", description="same keeps the size through a conv, so deep stacks do not vanish."
    )
    convs_per_block: int = Field(1, gt=0)
    pool_size: int = Field(2, gt=0)
    residual: bool = Field(False, description="Add a skip connection around each block's convs.")
    global_pooling: bool = Field(
        False, description="Global average pooling instead of flattening before the dense layers."
    )
    dense: Widths = Field(
        default_factory=lambda: [64], description="Widths of the dense layers after the blocks."
    )
    dropout: float = Field(0.5, ge=0, lt=1, description="Dropout before the output layer.")
    block_dropout: float = Field(
        0.0, ge=0, lt=1, description="Dropout after each pooling layer (0 turns it off)."
    )
    spatial_dropout: bool = Field(
        False, description="Drop whole feature maps in block dropout (SpatialDropout2D)."
    )
    augmentation: AugmentationSpec = Field(default_factory=AugmentationSpec)

    @model_validator(mode="after")
    def _residual_keeps_the_size(self) -> CnnSpec:
        if self.residual and self.padding != "same":
            raise ValueError(
                "A residual block adds its input to its output, so its convs must keep the size: "
                f"set `padding: same`. Received: residual=true, padding={self.padding}"
            )
        return self


class RnnCell(StrEnum):
    LSTM = "lstm"
    GRU = "gru"
    SIMPLE = "simple"


class RnnSpec(PredictorBase):
    """Recurrent layers over sequences such as time-series windows."""

    family: Literal["rnn"] = "rnn"
    cell: RnnCell = RnnCell.LSTM
    units: Widths = Field(
        default_factory=lambda: [64], min_length=1, description="Units of each stacked layer."
    )
    bidirectional: bool = False
    recurrent_dropout: float = Field(0.0, ge=0, lt=1)
    dense: Widths = Field(default_factory=list, description="Dense layers after the RNN.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the output layer.")


class TextEncoder(StrEnum):
    CONV = "conv"  # 1D convolution + global max pooling: fast, strong on short texts
    BILSTM = "bilstm"
    ATTENTION = "attention"  # a small transformer encoder block
    BAG = "bag"  # the vocabulary's words and n-grams, present or not (no order), then dense


class BagMode(StrEnum):
    """How the bag encoder weighs each vocabulary entry of a text."""

    MULTI_HOT = "multi_hot"  # 1 if the text holds it
    COUNT = "count"  # how many times the text holds it
    TF_IDF = "tf_idf"  # count times the entry's idf on the training texts (rare entries weigh more)


class TextSpec(PredictorBase):
    """Token embeddings and an encoder for text."""

    family: Literal["text"] = "text"
    encoder: TextEncoder = TextEncoder.CONV
    embedding_dim: Width = 64
    filters: Width = Field(128, description="conv: filters of the 1D convolution.")
    kernel_size: int = Field(5, gt=0, description="conv: window of the 1D convolution.")
    units: Width = Field(64, description="bilstm: units of each direction.")
    num_heads: int = Field(2, gt=0, description="attention: attention heads.")
    ff_dim: Width = Field(128, description="attention: width of the feed-forward layer.")
    bag_mode: BagMode = Field(
        BagMode.TF_IDF, description="bag: multi_hot, count or tf_idf (idf fitted by prepare)."
    )
    dense: Widths = Field(default_factory=lambda: [64])
    dropout: float = Field(0.3, ge=0, lt=1, description="Dropout before the output layer.")


class AutoencoderSpec(ModelBase):
    """Learns to reconstruct its input; its output is each example's reconstruction error,
    an anomaly score (labels are not used)."""

    family: Literal["autoencoder"] = "autoencoder"
    architecture: Literal["dense", "conv"] = Field(
        "dense", description="dense: any features; conv: images (Conv2D down, Conv2DTranspose up)."
    )
    units: Widths = Field(
        default_factory=lambda: [128, 64], min_length=1, description="dense: encoder widths."
    )
    filters: Widths = Field(
        default_factory=lambda: [32, 64], min_length=1, description="conv: encoder filters."
    )
    latent_dim: Width = Field(16, description="Width of the bottleneck.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout after each encoder layer.")


class Backbone(StrEnum):
    MOBILENET_V2 = "mobilenet_v2"
    MOBILENET_V3_SMALL = "mobilenet_v3_small"
    EFFICIENTNET_B0 = "efficientnet_b0"
    DENSENET121 = "densenet121"


class TransferSpec(PredictorBase):
    """A keras.applications backbone under a new head: trained frozen, then fine-tuned."""

    family: Literal["transfer"] = "transfer"
    backbone: Backbone = Backbone.MOBILENET_V2
    weights: Path | None = Field(
        None,
        description="Backbone weights file (no top), e.g. the Keras *_notop.h5; none: random "
        "initialisation. Relative paths are read from the working directory.",
    )
    image_size: int = Field(96, ge=32, le=1024, description="Images are resized to this square.")
    freeze_epochs: int = Field(
        3,
        ge=0,
        description="Epochs training the head with the backbone frozen; 0: fine-tune at once.",
    )
    fine_tune_layers: int | None = Field(
        None, gt=0, description="Unfreeze only the backbone's top N layers (none: all of them)."
    )
    fine_tune_learning_rate: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Fine-tuning rate as a fraction of train.optimizer.learning_rate.",
    )
    discriminative_lr: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Discriminative rates (fastai): the backbone's bottom layer learns at this "
        "× the rate, rising geometrically layer by layer to 1× at its top and in the head; "
        "null: one rate for all.",
    )
    dense: Widths = Field(default_factory=list, description="Dense layers on the backbone.")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout before the output layer.")
    augmentation: AugmentationSpec = Field(
        default_factory=AugmentationSpec,
        description="As the cnn family's, on the image's own pixels before it is resized.",
    )


class GanSpec(ModelBase):
    """A DCGAN: a generator turns noise into images, a discriminator tells them from real ones.
    Labels are not used; a grid of samples is saved as PNG after every epoch."""

    family: Literal["gan"] = "gan"
    latent_dim: Width = Field(64, description="Size of the generator's noise vector.")
    filters: Widths = Field(
        default_factory=lambda: [128, 64],
        min_length=1,
        description="Generator: filters of each upsampling block (the discriminator mirrors it).",
    )
    dropout: float = Field(0.3, ge=0, lt=1, description="Dropout in the discriminator.")
    label_smoothing: float = Field(
        0.1, ge=0, lt=0.5, description="Real images are labelled 1 − this (one-sided smoothing)."
    )
    discriminator_learning_rate: float | None = Field(
        None, gt=0, description="Defaults to train.optimizer.learning_rate."
    )
    samples: int = Field(8, ge=1, le=32, description="The sample grid is samples × samples.")


def _model_family(value: Any) -> str | None:
    # A model section without `family` is a CNN, the default model.
    if isinstance(value, dict):
        family = value.get("family", "cnn")
        return family if isinstance(family, str) else None
    return getattr(value, "family", None)


ModelSpec = Annotated[
    Annotated[MlpSpec, Tag("mlp")]
    | Annotated[CnnSpec, Tag("cnn")]
    | Annotated[RnnSpec, Tag("rnn")]
    | Annotated[TextSpec, Tag("text")]
    | Annotated[AutoencoderSpec, Tag("autoencoder")]
    | Annotated[TransferSpec, Tag("transfer")]
    | Annotated[GanSpec, Tag("gan")],
    Discriminator(_model_family),
]
