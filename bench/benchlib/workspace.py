"""The data, model and catalog that the benchmark sections share, all under one temporary folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from towhee_recsys.data.dataset import Dataset

logger = logging.getLogger("bench")

# Size of the generated dataset of `--synthetic`: small enough to train in seconds.
SYNTHETIC_USERS = 300
SYNTHETIC_MOVIES_PER_GENRE = 60
SYNTHETIC_RATINGS_PER_USER = 40


@dataclass
class Workspace:
    """A dataset, the model trained on it and a catalog folder ingested with both.

    Attributes:
        root: temporary folder that every section writes into; removed after the run.
        dataset: MovieLens 1M, or a small generated dataset with `--synthetic`.
        is_movielens: True for MovieLens 1M, whose sizes the targets are stated for.
        home: the catalog's data folder: model in ``home/model``, Milvus Lite and
            embedded Redis files beside it.
        results: values that one section passes to a later one, such as the
            in-process recommend p50 that the HTTP section compares with.
    """

    root: Path
    dataset: Dataset
    is_movielens: bool
    home: Path = field(init=False)
    model: Any = None
    catalog_ready: bool = False
    results: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home = self.root / "catalog"

    @property
    def model_dir(self) -> Path:
        return self.home / "model"

    def ensure_model(self, epochs: int = 1) -> Any:
        """Return the trained model, training it for `epochs` epochs if no section did yet."""
        if self.model is None:
            from towhee_recsys import ModelConfig, train

            logger.info("Training a %d-epoch model for the sections that need one", epochs)
            self.model = train(self.dataset, ModelConfig(epochs=epochs), model_dir=self.model_dir, show_progress=False)
        return self.model

    def ensure_catalog(self) -> Path:
        """Ingest the dataset into `home` once, and return `home`."""
        if not self.catalog_ready:
            from towhee_recsys import ingest_pipeline

            model = self.ensure_model()
            logger.info("Ingesting %d movies and %d users into %s", len(self.dataset.movies),
                        len(self.dataset.users), self.home)
            with ingest_pipeline(home=self.home, model=model) as ingest:
                ingest(self.dataset, show_progress=False)
            self.catalog_ready = True
        return self.home


def load_dataset(data: str | None, synthetic: bool) -> tuple[Dataset, bool]:
    """Load MovieLens 1M from `data`, or generate the small dataset; return it and whether it is MovieLens."""
    if synthetic:
        from towhee_recsys.data.synthetic import planted_dataset

        dataset = planted_dataset(
            users=SYNTHETIC_USERS,
            movies_per_genre=SYNTHETIC_MOVIES_PER_GENRE,
            ratings_per_user=SYNTHETIC_RATINGS_PER_USER,
        )
        return dataset, False

    from towhee_recsys import load_movielens

    return load_movielens(data, download=False, show_progress=False), True


def raw_redis_client(store: Any) -> Any:
    """Return a plain redis-py client on the server behind a towhee_recsys Redis metadata store.

    The benchmark reads private attributes here: the socket file of the embedded
    server, which the store does not expose.
    """
    import redis

    client = store._ready_client()
    socket_file = getattr(client, "socket_file", None)
    if socket_file:
        return redis.Redis(unix_socket_path=socket_file, decode_responses=True)
    return redis.Redis.from_url(store.uri, decode_responses=True)


def raw_milvus_client(vector_store: Any) -> Any:
    """Return a plain pymilvus client on the Milvus Lite file or server of a vector store."""
    from pymilvus import MilvusClient

    lite_path = getattr(vector_store, "_lite_path", None)
    return MilvusClient(uri=lite_path or vector_store.uri)
