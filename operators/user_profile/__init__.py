"""Operator user-profile: fetch a user's demographics and rated movies."""

from __future__ import annotations

from typing import Any

from towhee_recsys.operators._base import MetadataStoreOperator

from towhee_recsys.data.dataset import User
from towhee_recsys.errors import UnknownUserError


class UserProfile(MetadataStoreOperator):
    """Return ``(user, rated_movie_ids)`` for a user id, or for a `User` query.

    With ``online_ratings=True`` it returns ``(user, rated_movie_ids, online_ratings)``,
    where `online_ratings` maps movie id to rating for the ratings recorded online
    (`RecommendPipeline.record_ratings`); it is empty for a user who is not stored.

    Input is a user id, or a `User` whose `user_id` may be None and whose gender,
    age and occupation describe a new user. A user id found in the metadata store
    gives the stored demographics and rated movies, in one round trip. An id that is
    not found, or no id, gives the query's demographics with no rated movies. An
    unknown id without any demographics raises UnknownUserError.

    Towhee drops a row whose inputs contain None, so a new user is passed as one
    `User` object rather than as separate, possibly empty, columns.

    Args:
        store: a metadata store object (shared with other operators), or
        uri: metadata store URI; default from `towhee_recsys.Settings`.
        id_type: "int" or "str", the catalog's id type.
        online_ratings: also return the user's online ratings as a third output.
    """

    name = "towhee-recsys/user-profile"

    def __init__(
        self, store: Any = None, uri: str | None = None, id_type: str = "int", online_ratings: bool = False
    ) -> None:
        super().__init__(store=store, uri=uri, id_type=id_type)
        self.online_ratings = bool(online_ratings)

    def run(self, query: Any) -> tuple[Any, ...]:
        user, rated_movie_ids, online_ratings = self._profile(query)
        if self.online_ratings:
            return user, rated_movie_ids, online_ratings
        return user, rated_movie_ids

    def _profile(self, query: Any) -> tuple[User, tuple[Any, ...], dict[Any, float]]:
        user = query if isinstance(query, User) else User(query)
        has_demographics = any(value not in (None, "") for value in (user.gender, user.age, user.occupation))

        if user.user_id is not None:
            record = self.store.get_user(user.user_id)
            if record is not None:
                return record.user, tuple(record.rated_movie_ids), dict(record.online_ratings)
            if not has_demographics:
                raise UnknownUserError(
                    f"User id {user.user_id!r} is not in the catalog. Pass gender, age and occupation "
                    "to recommend for a new user, or ingest this user's ratings first."
                )
        elif not has_demographics:
            raise UnknownUserError(
                "Neither a user id nor demographics were given: pass a user id, or "
                "gender, age and occupation for a new user."
            )
        return user, (), {}
