"""Two-tower model: planted preference, unit vectors, save/load, format checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from towhee_recsys.data.dataset import User
from towhee_recsys.data.synthetic import GENRES, planted_dataset
from towhee_recsys.errors import DatasetError, InvalidParameterError, ModelError
from towhee_recsys.model import ModelConfig, RecommenderModel, train

SMALL_CONFIG = dict(objective="rating", epochs=20, batch_size=256, learning_rate=0.01, seed=1)

ENCODE_SCRIPT = """
import sys
import numpy as np
from towhee_recsys.data.synthetic import planted_dataset
from towhee_recsys.model import RecommenderModel
model = RecommenderModel.load(sys.argv[1])
dataset = planted_dataset()
users = model.encode_users(list(dataset.users.values()))
movies = model.encode_movies(list(dataset.movies.values()))
np.save(sys.argv[2], np.concatenate([users, movies]))
"""


@pytest.fixture(scope="module")
def planted():
    return planted_dataset()


@pytest.fixture(scope="module")
def trained(planted, tmp_path_factory) -> tuple[RecommenderModel, Path]:
    model_dir = tmp_path_factory.mktemp("model")
    model = train(planted, ModelConfig(**SMALL_CONFIG), model_dir=model_dir, show_progress=False)
    return model, model_dir


def _top_genres(model: RecommenderModel, planted, user_vector: np.ndarray, k: int = 10) -> list[str]:
    movies = list(planted.movies.values())
    scores = model.encode_movies(movies) @ user_vector
    return [movies[i].genres[0] for i in np.argsort(-scores)[:k]]


def test_vectors_are_unit_and_256_dim(trained, planted):
    model, _ = trained
    vectors = model.encode_movies(list(planted.movies.values()))
    assert vectors.shape == (160, 256)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_comedy_lover_gets_comedies_first(trained, planted):
    model, _ = trained
    comedy_fan = planted.users[1]
    assert GENRES[(comedy_fan.user_id - 1) % 4] == "Comedy"
    top = _top_genres(model, planted, model.encode_users([comedy_fan])[0])
    assert top == ["Comedy"] * 10


@pytest.mark.parametrize("occupation", range(4))
def test_new_user_from_demographics(trained, planted, occupation):
    model, _ = trained
    vector = model.encode_users([User(None, "F", 25, occupation)], known_ids=False)[0]
    assert _top_genres(model, planted, vector) == [GENRES[occupation]] * 10


def test_new_movie_from_content(trained, planted):
    model, _ = trained
    horror_fan = planted.users[3]
    known = list(planted.movies.values())
    unseen = [type(known[0])(10_000 + i, f"The Scream {i} (1990)", (genre,), 1990) for i, genre in enumerate(GENRES)]
    scores = model.encode_movies(unseen) @ model.encode_users([horror_fan])[0]
    assert unseen[int(np.argmax(scores))].genres == ("Horror",)


def test_validation_rmse_logged_per_epoch(trained):
    model, _ = trained
    assert [record["epoch"] for record in model.history] == list(range(1, 21))
    assert all(record["val_rmse"] is not None for record in model.history)
    assert model.history[-1]["val_rmse"] < model.history[0]["val_rmse"]
    assert model.history[-1]["val_rmse"] < 0.5


def test_training_is_reproducible(planted, trained):
    model, _ = trained
    again = train(planted, ModelConfig(**SMALL_CONFIG), show_progress=False)
    assert again.history[-1]["val_rmse"] == model.history[-1]["val_rmse"]


def test_reload_in_new_process_gives_identical_vectors(trained, planted, tmp_path):
    model, model_dir = trained
    expected = np.concatenate([
        model.encode_users(list(planted.users.values())),
        model.encode_movies(list(planted.movies.values())),
    ])
    output = tmp_path / "vectors.npy"
    subprocess.run([sys.executable, "-c", ENCODE_SCRIPT, str(model_dir), str(output)], check=True)
    np.testing.assert_array_equal(np.load(output), expected)


def test_model_folder_has_no_pickles(trained):
    _, model_dir = trained
    assert sorted(path.name for path in model_dir.iterdir()) == ["config.json", "vocabularies.json", "weights.npz"]
    with np.load(model_dir / "weights.npz", allow_pickle=False) as weights:
        assert all(weights[name].dtype != object for name in weights.files)


def test_other_format_version_rejected(trained, tmp_path):
    _, model_dir = trained
    copy = tmp_path / "model"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    config = json.loads((copy / "config.json").read_text())
    config["format_version"] = 99
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="format version 99"):
        RecommenderModel.load(copy)


def test_missing_model_folder_rejected(tmp_path):
    with pytest.raises(ModelError, match="towhee-recsys train"):
        RecommenderModel.load(tmp_path / "nothing")


def test_changed_weights_rejected(trained, tmp_path):
    _, model_dir = trained
    copy = tmp_path / "model"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    np.savez(copy / "weights.npz", other=np.zeros(3))
    with pytest.raises(ModelError, match="fingerprint"):
        RecommenderModel.load(copy)


@pytest.mark.parametrize(
    "field, value",
    [("epochs", 0), ("batch_size", -1), ("id_dropout", 1.5), ("learning_rate", 0), ("embedding_dim", "256")],
)
def test_invalid_config_names_field(field, value):
    with pytest.raises(InvalidParameterError, match=field):
        ModelConfig(**{field: value})


def test_damaged_weights_rejected(trained, tmp_path):
    _, model_dir = trained
    copy = tmp_path / "model"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "weights.npz").write_bytes((model_dir / "weights.npz").read_bytes()[:1000])
    with pytest.raises(ModelError, match="incomplete or damaged"):
        RecommenderModel.load(copy)


CONTRASTIVE_CONFIG = dict(
    objective="contrastive", positive_rating=4, epochs=15, users_per_batch=32, learning_rate=0.01, seed=1
)


@pytest.fixture(scope="module")
def contrastive(planted) -> RecommenderModel:
    return train(planted, ModelConfig(**CONTRASTIVE_CONFIG), show_progress=False)


def test_contrastive_objective_learns_favourite_genres(contrastive, planted):
    # Only the 5-star ratings of the favourite genre are positives, so the 1-star ratings
    # of other genres must not pull those genres up.
    for user_id in (1, 2, 3, 4):
        user = planted.users[user_id]
        top = _top_genres(contrastive, planted, contrastive.encode_users([user])[0])
        assert top == [GENRES[(user_id - 1) % 4]] * 10


def test_contrastive_history_reports_losses(contrastive):
    history = contrastive.history
    assert [record["epoch"] for record in history] == list(range(1, 16))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    # On 160 movies the ids soon memorize the training pairs, so here the held-out loss is
    # only checked to be finite. On MovieLens it falls (see docs/quality.md).
    assert all(np.isfinite(record["val_loss"]) for record in history)
    assert "train_rmse" not in history[-1]


def test_contrastive_without_positives_names_threshold(planted):
    config = ModelConfig(**{**CONTRASTIVE_CONFIG, "positive_rating": 6})
    with pytest.raises(DatasetError, match="positive_rating=6"):
        train(planted, config, show_progress=False)


def test_epoch_callback_keeps_best_epoch_and_stops_early(planted):
    scores = iter([0.1, 0.5, 0.2, 0.3, 0.9, 0.9])
    snapshots = []

    def callback(model, record):
        snapshots.append(model.encode_movies(list(planted.movies.values())[:5]))
        return next(scores)

    config = ModelConfig(**{**SMALL_CONFIG, "epochs": 6, "patience": 2})
    model = train(planted, config, show_progress=False, epoch_callback=callback)
    # Epoch 2 scored best; epochs 3 and 4 did not improve, so training stopped after 4.
    assert [record["val_score"] for record in model.history] == [0.1, 0.5, 0.2, 0.3]
    np.testing.assert_allclose(model.encode_movies(list(planted.movies.values())[:5]), snapshots[1], atol=1e-6)
    assert not np.allclose(snapshots[1], snapshots[3])


@pytest.mark.parametrize(
    "field, value",
    [("objective", "bpr"), ("temperature", 0), ("popularity_correction", -1), ("users_per_batch", 0), ("patience", -1),
     ("learning_rate_decay", 0), ("learning_rate_decay", 1.5)],
)
def test_invalid_training_option_names_field(field, value):
    with pytest.raises(InvalidParameterError, match=field):
        ModelConfig(**{field: value})


def test_config_saved_before_objectives_loads_as_rating():
    assert ModelConfig.from_dict({"epochs": 3}).objective == "rating"
    assert ModelConfig().objective == ModelConfig.from_dict(ModelConfig().to_dict()).objective
