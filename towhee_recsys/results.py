"""Result types returned by the pipelines."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from towhee_recsys.data.dataset import Id


@dataclass(frozen=True)
class Recommendation:
    """One recommended movie; `score` is the cosine of user and movie vectors."""

    movie_id: Id
    title: str
    genres: tuple[str, ...]
    year: int | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["genres"] = list(self.genres)
        return data
