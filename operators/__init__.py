"""Towhee operators of towhee_recsys, registered under the namespace ``towhee_recsys``.

After ``import towhee_recsys`` any Towhee pipeline can use them as
``ops.towhee_recsys.<name>(...)``, for example ``ops.towhee_recsys.user_encoder(model_dir=...)``,
with no Towhee hub download.
"""

from __future__ import annotations

from towhee_recsys.operators.explain import Explain
from towhee_recsys.operators.metadata_lookup import MetadataLookup
from towhee_recsys.operators.metadata_write import MetadataWrite
from towhee_recsys.operators.milvus_search import MilvusSearch
from towhee_recsys.operators.milvus_upsert import MilvusUpsert
from towhee_recsys.operators.movie_encoder import MovieEncoder
from towhee_recsys.operators.movie_features import MovieFeatures
from towhee_recsys.operators.online_blend import OnlineBlend
from towhee_recsys.operators.rank_stage import RankStage
from towhee_recsys.operators.user_encoder import UserEncoder
from towhee_recsys.operators.user_features import UserFeatures
from towhee_recsys.operators.user_profile import UserProfile

OPERATORS = (
    UserProfile,
    UserFeatures,
    UserEncoder,
    OnlineBlend,
    MovieFeatures,
    MovieEncoder,
    MilvusUpsert,
    MilvusSearch,
    RankStage,
    Explain,
    MetadataWrite,
    MetadataLookup,
)

__all__ = [cls.__name__ for cls in OPERATORS] + ["register_operators"]


def register_operators() -> None:
    """Register every operator with Towhee; calling it again changes nothing."""
    from towhee import register

    for cls in OPERATORS:
        register(name=cls.name)(cls)
