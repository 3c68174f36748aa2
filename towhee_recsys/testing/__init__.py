"""Throwaway servers on 127.0.0.1 for tests and local experiments.

`MilvusServerProcess` runs a Milvus standalone server from the `milvus` package and
`RedisClusterProcess` a small Redis Cluster from the machine's redis-server. Both keep
their data in a temporary folder and stop everything they started.
"""

from towhee_recsys.testing.milvus_server import MilvusServerProcess
from towhee_recsys.testing.redis_cluster import RedisClusterProcess

__all__ = ["MilvusServerProcess", "RedisClusterProcess"]
