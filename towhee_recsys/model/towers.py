"""PaddlePaddle user and movie towers.

Imported only when a model is trained or loaded, because importing Paddle takes
about a second.
"""

from __future__ import annotations

import paddle
from paddle import nn

from towhee_recsys.features import PAD_INDEX
from towhee_recsys.model.config import ModelConfig


def _mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    # hidden_dim 0 gives the reference model's shape: one fully connected layer with tanh
    # on the concatenated embeddings.
    if hidden_dim == 0:
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.Tanh())
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))


def _l2_normalize(vectors: paddle.Tensor) -> paddle.Tensor:
    # Written out because paddle.nn.functional.normalize is several times slower on CPU.
    return vectors * paddle.rsqrt((vectors * vectors).sum(axis=-1, keepdim=True) + 1e-12)


def _masked_mean(embedded: paddle.Tensor, indices: paddle.Tensor) -> paddle.Tensor:
    # Mean over the non-padding positions; a row of padding only pools to zeros.
    mask = (indices != PAD_INDEX).astype(embedded.dtype).unsqueeze(-1)
    total = (embedded * mask).sum(axis=1)
    return total / mask.sum(axis=1).clip(min=1.0)


class UserTower(nn.Layer):
    """Embeds user id, gender, age group and occupation, then an MLP to the vector."""

    def __init__(self, config: ModelConfig, sizes: dict[str, int]) -> None:
        super().__init__()
        self.user_id = nn.Embedding(sizes["user_id"], config.id_dim)
        self.gender = nn.Embedding(sizes["gender"], config.feature_dim)
        self.age = nn.Embedding(sizes["age"], config.feature_dim)
        self.occupation = nn.Embedding(sizes["occupation"], config.feature_dim)
        in_dim = config.id_dim + 3 * config.feature_dim
        self.mlp = _mlp(in_dim, config.hidden_dim, config.embedding_dim)

    def forward(self, user_id, gender, age, occupation) -> paddle.Tensor:
        parts = [self.user_id(user_id), self.gender(gender), self.age(age), self.occupation(occupation)]
        return _l2_normalize(self.mlp(paddle.concat(parts, axis=-1)))


class MovieTower(nn.Layer):
    """Embeds movie id, pooled genres, pooled title words and year, then an MLP."""

    def __init__(self, config: ModelConfig, sizes: dict[str, int]) -> None:
        super().__init__()
        self.movie_id = nn.Embedding(sizes["movie_id"], config.id_dim)
        self.genre = nn.Embedding(sizes["genre"], config.feature_dim, padding_idx=PAD_INDEX)
        self.title_word = nn.Embedding(sizes["title_word"], config.title_dim, padding_idx=PAD_INDEX)
        self.year = nn.Embedding(sizes["year"], config.feature_dim)
        in_dim = config.id_dim + 2 * config.feature_dim + config.title_dim
        self.mlp = _mlp(in_dim, config.hidden_dim, config.embedding_dim)

    def forward(self, movie_id, genres, title, year) -> paddle.Tensor:
        parts = [
            self.movie_id(movie_id),
            _masked_mean(self.genre(genres), genres),
            _masked_mean(self.title_word(title), title),
            self.year(year),
        ]
        return _l2_normalize(self.mlp(paddle.concat(parts, axis=-1)))


class TwoTowerModel(nn.Layer):
    """User and movie towers whose unit vectors score by inner product (= cosine)."""

    def __init__(self, config: ModelConfig, sizes: dict[str, int]) -> None:
        super().__init__()
        self.user_tower = UserTower(config, sizes)
        self.movie_tower = MovieTower(config, sizes)
        self.rating_scale = float(config.rating_scale or 5.0)

    def forward(self, users: dict[str, paddle.Tensor], movies: dict[str, paddle.Tensor]):
        """Return the predicted rating, rating_scale x cosine, as in the reference PaddlePaddle model."""
        user_vectors = self.user_tower(**users)
        movie_vectors = self.movie_tower(**movies)
        return self.rating_scale * (user_vectors * movie_vectors).sum(axis=-1)

    def pair_ratings(self, users, movies, user_rows: paddle.Tensor, movie_rows: paddle.Tensor) -> paddle.Tensor:
        """Predicted ratings of (user_rows[k], movie_rows[k]) pairs over distinct users and movies.

        Each distinct user and movie passes its tower once per batch; on MovieLens a batch of
        8,192 ratings contains about half as many distinct users and movies as ratings.
        """
        user_vectors = paddle.gather(self.user_tower(**users), user_rows)
        movie_vectors = paddle.gather(self.movie_tower(**movies), movie_rows)
        return self.rating_scale * (user_vectors * movie_vectors).sum(axis=-1)
