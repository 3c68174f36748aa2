"""Model and stores opened once and shared by every operator of a pipeline."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from towhee_recsys.errors import ModelError
from towhee_recsys.settings import Settings
from towhee_recsys.stores.base import redact_uri

logger = logging.getLogger(__name__)


@dataclass
class Resources:
    """A loaded model and open vector and metadata stores."""

    settings: Settings
    model: Any
    vector_store: Any
    metadata_store: Any

    @classmethod
    def open(cls, settings: Settings, model: Any = None) -> Resources:
        """Load the model (unless given) and open both stores for it."""
        from towhee_recsys.model import load_model
        from towhee_recsys.stores import open_metadata_store, open_vector_store

        model = model or load_model(settings.model_dir)
        id_type = model.vocabularies.id_type
        metadata_store = open_metadata_store(
            settings.metadata_uri, id_type=id_type, **settings.metadata_store_options()
        )
        try:
            vector_store = open_vector_store(
                settings.milvus_uri, collection_name=settings.collection_name, dim=model.dim, id_type=id_type
            )
            vector_store.open()
        except BaseException:
            metadata_store.close()
            raise
        return cls(settings, model, vector_store, metadata_store)

    def check_catalog_model(self) -> None:
        """Raise ModelError if the catalog's vectors were made by another model."""
        ingested_with = self.metadata_store.get_info().get("model_fingerprint")
        if not ingested_with:
            raise ModelError(
                f"The catalog at '{redact_uri(self.settings.metadata_uri)}' has no finished ingest: nothing was "
                "ingested yet, or an ingest was interrupted. Run `towhee-recsys ingest` (or `towhee-recsys demo`)."
            )
        if ingested_with != self.model.fingerprint:
            raise ModelError(
                f"The movie vectors were made by model {ingested_with}, but the model in "
                f"'{self.settings.model_dir}' is {self.model.fingerprint}. Run `towhee-recsys ingest` "
                "again so that users and movies are encoded by the same model."
            )

    def close(self) -> None:
        for store in (self.vector_store, self.metadata_store):
            try:
                store.close()
            except Exception:  # noqa: BLE001 - closing must not hide the caller's own error
                logger.warning("Closing %s failed", type(store).__name__, exc_info=True)
