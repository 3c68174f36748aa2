"""Result types returned by the pipelines."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from towhee_recsys.data.dataset import Id


@dataclass(frozen=True)
class Reason:
    """A movie the user rated that supports a recommendation, and how strongly."""

    movie_id: Id
    title: str
    support: float


@dataclass(frozen=True)
class Recommendation:
    """One recommended movie.

    `score` is the cosine of user and movie vectors, or with the rank stage its blended
    rank score (a sum of standardized scores, so it may be negative). `because` holds,
    when explanations were asked for, the user's rated movies that most support it.
    """

    movie_id: Id
    title: str
    genres: tuple[str, ...]
    year: int | None
    score: float
    because: tuple[Reason, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["genres"] = list(self.genres)
        if self.because:
            data["because"] = [asdict(reason) for reason in self.because]
        else:
            del data["because"]
        return data


# Columns of the CSV output of batch recommendation: one row per user and rank.
CSV_COLUMNS = ("user_id", "rank", "movie_id", "title", "genres", "year", "score")
# Joins a movie's genres in one CSV cell, as in the MovieLens and own-dataset files.
CSV_GENRE_SEPARATOR = "|"


def json_line(user_id: Id, recommendations: list[Recommendation]) -> str:
    """Return one JSON line: ``{"user_id": ..., "recommendations": [...]}``, without a newline."""
    items = [item.to_dict() for item in recommendations]
    return json.dumps({"user_id": user_id, "recommendations": items}, ensure_ascii=False)


def csv_rows(user_id: Id, recommendations: list[Recommendation]) -> list[list[Any]]:
    """Return one CSV row per recommendation of a user, in CSV_COLUMNS order, rank from 1."""
    return [
        [
            user_id,
            rank,
            item.movie_id,
            item.title,
            CSV_GENRE_SEPARATOR.join(item.genres),
            "" if item.year is None else item.year,
            repr(item.score),
        ]
        for rank, item in enumerate(recommendations, start=1)
    ]
