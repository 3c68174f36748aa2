"""Operator movie-features: turn movies into the model's feature indices."""

from __future__ import annotations

from collections.abc import Sequence

from towhee_recsys.operators._base import ModelOperator

from towhee_recsys.data.dataset import Movie
from towhee_recsys.features import FeatureBatch
from towhee_recsys.validation import invalid_parameter


class MovieFeatures(ModelOperator):
    """Encode one `Movie` (or a list) as id, genre, title-word and year indices.

    Movies the model never saw in training get the unknown id index, so the movie
    tower embeds them from genres, title and year.

    Args:
        model: a loaded `RecommenderModel`, or
        model_dir: a model folder, loaded once per process.
    """

    name = "towhee-recsys/movie-features"

    def run(self, movies: Movie | Sequence[Movie]) -> FeatureBatch:
        single = isinstance(movies, Movie)
        if not single and not isinstance(movies, (list, tuple)):
            raise invalid_parameter("movies", "a towhee_recsys Movie or a list of them", movies)
        batch = [movies] if single else list(movies)
        for movie in batch:
            if not isinstance(movie, Movie):
                raise invalid_parameter("movie", "a towhee_recsys Movie", movie)
        return FeatureBatch(self.model.vocabularies.encode_movies(batch), single=single)
