"""Two-tower model: configuration, training, saving and loading.

Paddle is imported only when a model is created, trained or loaded.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from towhee_recsys.model.config import ModelConfig
from towhee_recsys.model.two_tower import RecommenderModel

__all__ = ["ModelConfig", "RecommenderModel", "load_model", "train"]

_cache: dict[tuple[str, float], RecommenderModel] = {}
_cache_lock = threading.Lock()


def load_model(model_dir: str | os.PathLike) -> RecommenderModel:
    """Load a model folder once per process; later calls return the same object.

    The cache key includes the modification time of config.json, so a model trained
    again into the same folder is loaded anew.
    """
    path = Path(model_dir).expanduser().resolve()
    config_file = path / "config.json"
    key = (str(path), config_file.stat().st_mtime if config_file.exists() else 0.0)
    with _cache_lock:
        model = _cache.get(key)
        if model is None:
            model = RecommenderModel.load(path)
            _cache[key] = model
    return model


def train(*args, **kwargs) -> RecommenderModel:
    """Train a model; see `towhee_recsys.model.training.train`."""
    from towhee_recsys.model.training import train as train_model

    return train_model(*args, **kwargs)
