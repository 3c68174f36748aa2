"""towhee_recsys: personalized movie recommendations with PaddlePaddle, Milvus and Towhee.

Importing the package registers the Towhee operators under ``ops.towhee_recsys``.
Paddle, pymilvus and the Redis clients are imported only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from towhee_recsys._version import __version__
from towhee_recsys.errors import (
    DatasetError,
    InvalidParameterError,
    ModelError,
    RecsysError,
    StoreError,
    StoreLockedError,
    UnknownUserError,
)
from towhee_recsys.operator_errors import original_errors
from towhee_recsys.operators import register_operators
from towhee_recsys.settings import Settings

register_operators()

_LAZY = {
    "recommend_pipeline": "towhee_recsys.pipelines",
    "ingest_pipeline": "towhee_recsys.pipelines",
    "RecommendPipeline": "towhee_recsys.pipelines",
    "IngestPipeline": "towhee_recsys.pipelines",
    "Recommendation": "towhee_recsys.results",
    "load_movielens": "towhee_recsys.data",
    "load_csv_dataset": "towhee_recsys.data",
    "Dataset": "towhee_recsys.data",
    "Movie": "towhee_recsys.data",
    "User": "towhee_recsys.data",
    "ModelConfig": "towhee_recsys.model",
    "RecommenderModel": "towhee_recsys.model",
    "load_model": "towhee_recsys.model",
    "train": "towhee_recsys.model",
}

__all__ = [
    "__version__",
    "DatasetError",
    "InvalidParameterError",
    "ModelError",
    "RecsysError",
    "Settings",
    "StoreError",
    "StoreLockedError",
    "UnknownUserError",
    "original_errors",
    "recommend_pipeline",
    "ingest_pipeline",
    "RecommendPipeline",
    "IngestPipeline",
    "Recommendation",
    "load_movielens",
    "load_csv_dataset",
    "Dataset",
    "Movie",
    "User",
    "ModelConfig",
    "RecommenderModel",
    "load_model",
    "train",
]

if TYPE_CHECKING:
    from towhee_recsys.data import Dataset, Movie, User, load_csv_dataset, load_movielens
    from towhee_recsys.model import ModelConfig, RecommenderModel, load_model, train
    from towhee_recsys.pipelines import IngestPipeline, RecommendPipeline, ingest_pipeline, recommend_pipeline
    from towhee_recsys.results import Recommendation


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'towhee_recsys' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
