"""The choices recipe keys and command-line options offer, as plain enums.

Light on purpose: the CLI builds its option lists (``--optimizer``, ``--split``, ``--sampler``,
…) from these while ``dltrain --help`` runs, without building the recipe's pydantic models.
Their values are what users type.
"""

from __future__ import annotations

from enum import StrEnum


class OptimizerName(StrEnum):
    SGD = "sgd"
    MOMENTUM = "momentum"
    NESTEROV = "nesterov"
    ADAGRAD = "adagrad"
    RMSPROP = "rmsprop"
    ADAM = "adam"
    ADAMW = "adamw"
    NADAM = "nadam"
    ADAMAX = "adamax"


class ScheduleName(StrEnum):
    CONSTANT = "constant"
    EXPONENTIAL = "exponential"
    STEP = "step"
    COSINE = "cosine"
    COSINE_RESTARTS = "cosine_restarts"
    POLYNOMIAL = "polynomial"
    INVERSE_TIME = "inverse_time"
    ONE_CYCLE = "one_cycle"


class SchedulePace(StrEnum):
    EPOCHS = "epochs"
    TIME_BUDGET = "time_budget"


class SplitName(StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


class ParamKind(StrEnum):
    """How a parameter is drawn; the values are the keys users write."""

    UNIFORM = "uniform"  # a float in [low, high]
    LOG_UNIFORM = "log_uniform"  # a float in [low, high], uniform in log space
    INT = "int"  # an integer in [low, high], every `step`
    LOG_INT = "log_int"  # an integer in [low, high], uniform in log space
    CHOICE = "choice"  # one of a list of values (numbers, strings, lists, mappings)


class SamplerName(StrEnum):
    TPE = "tpe"
    RANDOM = "random"
    GRID = "grid"
    CMAES = "cmaes"
    QMC = "qmc"


class PrunerName(StrEnum):
    HYPERBAND = "hyperband"
    MEDIAN = "median"
    SUCCESSIVE_HALVING = "successive_halving"
    NONE = "none"


class InputMode(StrEnum):
    """How training reads a prepared split (``train.input``)."""

    AUTO = "auto"  # in memory when the split is small enough (data/streaming.py), else streamed
    MEMORY = "memory"  # the whole split read into memory once
    STREAM = "stream"  # the shards streamed from disk every epoch
