"""Generated movie catalogs of any size, made from the words, genres and years of a real catalog."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from towhee_recsys.data.dataset import Id, Movie
from towhee_recsys.data.titles import title_words

MAX_TITLE_WORDS = 4
MAX_GENRES = 3


def synthetic_movies(count: int, catalog: Iterable[Movie], *, id_type: str = "int", seed: int = 0) -> list[Movie]:
    """Return `count` new movies whose titles, genres and years are drawn from `catalog`.

    Titles have 1 to 4 words of the catalog's titles, movies 1 to 3 of its genres and
    one of its years, so the movie tower sees the same kind of features as in the
    catalog. Ids follow the largest integer id of the catalog (or are "synthetic-<n>"
    strings for `id_type="str"`), so they never collide with real movies.
    """
    movies = list(catalog)
    words = sorted({word for movie in movies for word in title_words(movie.name)}) or ["movie"]
    genres = sorted({genre for movie in movies for genre in movie.genres}) or ["Drama"]
    years = sorted({movie.year for movie in movies if movie.year is not None}) or [1995]
    first_id = 1 + max((movie.movie_id for movie in movies if isinstance(movie.movie_id, int)), default=0)

    rng = np.random.default_rng(seed)
    word_counts = rng.integers(1, MAX_TITLE_WORDS + 1, size=count)
    word_picks = rng.integers(0, len(words), size=(count, MAX_TITLE_WORDS))
    genre_counts = rng.integers(1, min(MAX_GENRES, len(genres)) + 1, size=count)
    genre_picks = np.argsort(rng.random((count, len(genres))), axis=1)[:, :MAX_GENRES]
    year_picks = rng.integers(0, len(years), size=count)

    generated = []
    for index in range(count):
        title_text = " ".join(words[w] for w in word_picks[index, : word_counts[index]])
        year = years[year_picks[index]]
        movie_id: Id = first_id + index if id_type == "int" else f"synthetic-{index}"
        movie_genres = tuple(genres[g] for g in genre_picks[index, : genre_counts[index]])
        generated.append(Movie(movie_id, f"{title_text.title()} ({year})", movie_genres, year))
    return generated
