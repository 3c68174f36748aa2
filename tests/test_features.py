"""Vocabularies: reserved indices, dtype-independent tokens, determinism across processes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from towhee_recsys.data.dataset import Dataset, Movie, Ratings, User
from towhee_recsys.features import PAD_INDEX, UNKNOWN_INDEX, FeatureVocabularies, Vocabulary

VOCAB_SCRIPT = """
import sys
from towhee_recsys.data.synthetic import planted_dataset
from towhee_recsys.features import FeatureVocabularies
sys.stdout.write(FeatureVocabularies.build(planted_dataset(seed=3)).to_json())
"""


def _tiny_dataset(user_ids: np.ndarray, movie_ids: np.ndarray) -> Dataset:
    movies = {m: Movie(m, f"Film {m} (1999)", ("Drama",), 1999) for m in movie_ids.tolist()}
    users = {u: User(u, "F", 25, 3) for u in user_ids.tolist()}
    ratings = Ratings(user_ids, movie_ids, np.full(len(user_ids), 4.0, dtype=np.float32))
    return Dataset(ratings, movies, users)


def test_vocabulary_reserves_pad_and_unknown():
    vocab = Vocabulary.build("genre", ["Drama", "Comedy", "Drama"])
    assert len(vocab) == 4
    assert vocab.index("Comedy") == 2
    assert vocab.index("Drama") == 3
    assert vocab.index("Western") == UNKNOWN_INDEX
    assert vocab.index(None) == UNKNOWN_INDEX
    assert vocab.index("") == UNKNOWN_INDEX


def test_vocabulary_never_returns_negative():
    vocab = Vocabulary.build("age", [1, 18, 25])
    indices = vocab.lookup([1, -1, None, 999, float("nan"), "25"])
    assert indices.min() >= 0
    assert indices.tolist() == [2, UNKNOWN_INDEX, UNKNOWN_INDEX, UNKNOWN_INDEX, UNKNOWN_INDEX, 4]


def test_integer_dtypes_give_same_index():
    vocab = Vocabulary.build("user_id", np.array([5, 7, 11], dtype=np.int64))
    for value in (np.int8(7), np.int16(7), np.int32(7), np.uint64(7), 7, "7", 7.0):
        assert vocab.index(value) == 3, value


def test_integer_ids_sort_numerically():
    vocab = Vocabulary.build("movie_id", [10, 9, 100, 1])
    assert vocab.tokens == ["1", "9", "10", "100"]


def test_padded_matrix_uses_pad_index():
    vocab = Vocabulary.build("genre", ["Drama", "Comedy"])
    matrix = vocab.padded([("Drama",), (), ("Comedy", "Noir")], width=3)
    assert matrix.tolist() == [[3, PAD_INDEX, PAD_INDEX], [PAD_INDEX] * 3, [2, UNKNOWN_INDEX, PAD_INDEX]]


def test_build_handles_int32_ids():
    dataset = _tiny_dataset(np.array([3, 1, 2], dtype=np.int32), np.array([30, 10, 20], dtype=np.int32))
    vocabularies = FeatureVocabularies.build(dataset)
    assert vocabularies.id_type == "int"
    assert vocabularies.user_id.tokens == ["1", "2", "3"]
    assert vocabularies.movie_id.index(np.int64(20)) == 3


def test_build_handles_string_ids():
    dataset = _tiny_dataset(np.array(["u-b", "u-a"], dtype=object), np.array(["m-2", "m-1"], dtype=object))
    vocabularies = FeatureVocabularies.build(dataset)
    assert vocabularies.id_type == "str"
    assert vocabularies.movie_id.tokens == ["m-1", "m-2"]
    encoded = vocabularies.encode_movies([dataset.movies["m-2"], Movie("m-new", "Other (2001)")])
    assert encoded["movie_id"].tolist() == [3, UNKNOWN_INDEX]


def test_new_user_encodes_without_id():
    dataset = _tiny_dataset(np.array([1, 2]), np.array([10, 20]))
    vocabularies = FeatureVocabularies.build(dataset)
    encoded = vocabularies.encode_users([User(None, "F", 25, None)])
    assert encoded["user_id"].tolist() == [UNKNOWN_INDEX]
    assert encoded["occupation"].tolist() == [UNKNOWN_INDEX]
    assert encoded["gender"].tolist() == [2]


def test_json_round_trip_keeps_indices():
    dataset = _tiny_dataset(np.array([1, 2]), np.array([10, 20]))
    vocabularies = FeatureVocabularies.build(dataset)
    restored = FeatureVocabularies.from_json(vocabularies.to_json())
    assert restored.sizes() == vocabularies.sizes()
    assert restored.movie_id.index(20) == vocabularies.movie_id.index(20)


def test_vocabularies_identical_across_processes():
    outputs = [
        subprocess.run([sys.executable, "-c", VOCAB_SCRIPT], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["genre"] == ["Comedy", "Drama", "Horror", "Sci-Fi"]
