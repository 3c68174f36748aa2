"""Shared behaviour of the towhee_recsys Towhee operators."""

from __future__ import annotations

import os
import threading
from typing import Any, ClassVar

from towhee_recsys.errors import RecsysError
from towhee_recsys.operator_errors import park
from towhee_recsys.settings import Settings


class RecsysOperator:
    """Base class: runs `run`, never returns None, and lets errors cross Towhee intact.

    Towhee drops a row silently when an operator returns None and turns exceptions
    into a RuntimeError with a traceback in its text. `__call__` raises instead of
    returning None and parks the original exception so that our pipelines, or
    `towhee_recsys.original_errors()`, re-raise it with its own type and message.
    """

    name: ClassVar[str] = "towhee-recsys/operator"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = self.run(*args, **kwargs)
            if result is None:
                raise RecsysError(f"Operator {self.name} produced no output.")
        except Exception as error:
            raise park(self.name, error) from error
        return result

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


class ModelOperator(RecsysOperator):
    """Operator that needs a trained model, given as an object or loaded once from a folder."""

    def __init__(self, model: Any = None, model_dir: str | os.PathLike | None = None) -> None:
        self._model = model
        self._model_dir = model_dir
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from towhee_recsys.model import load_model

                    self._model = load_model(self._model_dir or Settings().model_dir)
        return self._model


class VectorStoreOperator(RecsysOperator):
    """Operator on the Milvus collection, given as a store object or opened from a URI."""

    def __init__(
        self,
        store: Any = None,
        uri: str | None = None,
        collection_name: str | None = None,
        dim: int = 256,
        id_type: str = "int",
    ) -> None:
        self._store = store
        self._uri = uri
        self._collection_name = collection_name
        self._dim = dim
        self._id_type = id_type
        self._lock = threading.Lock()

    @property
    def store(self) -> Any:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from towhee_recsys.stores import open_vector_store

                    settings = Settings()
                    self._store = open_vector_store(
                        self._uri or settings.milvus_uri,
                        collection_name=self._collection_name or settings.collection_name,
                        dim=self._dim,
                        id_type=self._id_type,
                    )
        return self._store


class MetadataStoreOperator(RecsysOperator):
    """Operator on the metadata store, given as a store object or opened from a URI."""

    def __init__(self, store: Any = None, uri: str | None = None, id_type: str = "int") -> None:
        self._store = store
        self._uri = uri
        self._id_type = id_type
        self._lock = threading.Lock()

    @property
    def store(self) -> Any:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from towhee_recsys.stores import open_metadata_store

                    self._store = open_metadata_store(self._uri or Settings().metadata_uri, id_type=self._id_type)
        return self._store
