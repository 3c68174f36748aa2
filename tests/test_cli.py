"""The towhee-recsys command: exit codes, one-line errors, own CSV data, the MovieLens demo."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from towhee_recsys.data.synthetic import planted_dataset

ML1M_ENV = "TOWHEE_RECSYS_ML1M"


def run_cli(*args: str, home: Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the console script with TOWHEE_RECSYS_HOME set to `home`."""
    env = {**os.environ, "TOWHEE_RECSYS_HOME": str(home)}
    script = Path(sys.executable).with_name("towhee-recsys")
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def write_planted_csv(folder: Path) -> dict[str, Path]:
    """Write the planted dataset in the own-dataset CSV format."""
    dataset = planted_dataset()
    paths = {name: folder / f"{name}.csv" for name in ("ratings", "movies", "users")}
    with open(paths["ratings"], "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["user_id", "movie_id", "rating", "timestamp"])
        ratings = dataset.ratings
        for row in zip(ratings.user_id, ratings.movie_id, ratings.rating, ratings.timestamp, strict=True):
            writer.writerow([int(row[0]), int(row[1]), float(row[2]), int(row[3])])
    with open(paths["movies"], "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["movie_id", "title", "genres"])
        for movie in dataset.movies.values():
            writer.writerow([movie.movie_id, movie.title, "|".join(movie.genres)])
    with open(paths["users"], "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["user_id", "gender", "age", "occupation"])
        for user in dataset.users.values():
            writer.writerow([user.user_id, user.gender, user.age, user.occupation])
    return paths



def stop_holder(holder: subprocess.Popen) -> None:
    """Interrupt the holder so it closes its stores; SIGKILL would leave its embedded Redis running."""
    holder.send_signal(signal.SIGINT)
    try:
        holder.wait(timeout=30)
    except subprocess.TimeoutExpired:
        holder.kill()
        holder.wait(timeout=30)


@pytest.fixture(scope="module")
def csv_home(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A data folder trained and ingested through the CLI from own CSV files."""
    folder = tmp_path_factory.mktemp("cli")
    paths = write_planted_csv(folder)
    data = ["--ratings", str(paths["ratings"]), "--movies", str(paths["movies"]), "--users", str(paths["users"])]
    home = folder / "home"
    trained = run_cli("-q", "train", *data, "--epochs", "20", "--batch-size", "256", "--learning-rate", "0.01",
                      home=home, cwd=folder)
    assert trained.returncode == 0, trained.stderr
    ingested = run_cli("-q", "ingest", *data, home=home, cwd=folder)
    assert ingested.returncode == 0, ingested.stderr
    assert "Milvus holds 160 vectors" in ingested.stdout
    return home, paths


def test_help_lists_commands(tmp_path):
    result = run_cli("--help", home=tmp_path, cwd=tmp_path)
    assert result.returncode == 0
    for command in ("train", "ingest", "recommend", "demo"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout


def test_recommend_without_model_exit_4(tmp_path):
    result = run_cli("recommend", "--user-id", "1", home=tmp_path, cwd=tmp_path)
    assert result.returncode == 4
    assert result.stderr.strip().startswith("error: No trained model")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_verbose_shows_traceback(tmp_path):
    result = run_cli("--verbose", "recommend", "--user-id", "1", home=tmp_path, cwd=tmp_path)
    assert result.returncode == 4
    assert "Traceback" in result.stderr


def test_bad_data_path_exit_3(tmp_path):
    result = run_cli("train", "--data", str(tmp_path / "missing"), home=tmp_path, cwd=tmp_path)
    assert result.returncode == 3
    assert "missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_epochs_exit_2(tmp_path):
    result = run_cli("train", "--data", str(tmp_path), "--epochs", "0", home=tmp_path, cwd=tmp_path)
    assert result.returncode == 2
    assert "epochs" in result.stderr


def test_recommend_known_user_json(csv_home):
    home, _ = csv_home
    result = run_cli("recommend", "--user-id", "1", "--top-k", "5", "--json", home=home, cwd=home)
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert len(items) == 5
    assert all(item["genres"] == ["Comedy"] for item in items)
    assert set(items[0]) == {"movie_id", "title", "genres", "year", "score"}


def test_recommend_new_user_table(csv_home):
    home, _ = csv_home
    result = run_cli("recommend", "--gender", "F", "--age", "25", "--occupation", "3", home=home, cwd=home)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()
    assert len(rows) == 11
    assert all("[Sci-Fi]" in row for row in rows[1:])


def test_recommend_unknown_user_exit_7(csv_home):
    home, _ = csv_home
    result = run_cli("recommend", "--user-id", "99999", home=home, cwd=home)
    assert result.returncode == 7
    assert "99999" in result.stderr


def test_recommend_top_k_zero_exit_2(csv_home):
    home, _ = csv_home
    result = run_cli("recommend", "--user-id", "1", "--top-k", "0", home=home, cwd=home)
    assert result.returncode == 2
    assert "top_k" in result.stderr


def test_second_process_gets_lock_message(csv_home):
    home, _ = csv_home
    holder_script = (
        "import sys, time\nfrom towhee_recsys import recommend_pipeline\n"
        "p = recommend_pipeline(home=sys.argv[1])\nprint('ready', flush=True)\ntime.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", holder_script, str(home)], stdout=subprocess.PIPE, text=True,
                              cwd=home)
    try:
        assert holder.stdout.readline().strip() == "ready"
        result = run_cli("recommend", "--user-id", "1", home=home, cwd=home)
    finally:
        stop_holder(holder)
    assert result.returncode == 6
    assert "in use by another process" in result.stderr


@pytest.mark.slow
def test_demo_on_movielens(tmp_path):
    data = os.environ.get(ML1M_ENV)
    if not data or not Path(data, "ratings.dat").is_file():
        pytest.skip(f"{ML1M_ENV} does not point at a MovieLens 1M folder; set it to run the demo test")
    home = tmp_path / "home"
    result = run_cli("demo", "--data", data, home=home, cwd=tmp_path, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    for heading in ("User 1 ", "User 2 ", "User 3 ", "New user"):
        assert heading in result.stdout
    assert len(re.findall(r"^\s+10\s+\d+\s", result.stdout, flags=re.MULTILINE)) == 4
    assert "val_loss" in result.stderr
    # User 1's list shows the rated movies behind each recommendation.
    assert result.stdout.count("because you rated: ") >= 5

    script = (
        "import json\nfrom towhee_recsys import recommend_pipeline\n"
        "with recommend_pipeline() as p:\n    print(json.dumps([r.movie_id for r in p(1, top_k=50)]))\n"
    )
    env = {**os.environ, "TOWHEE_RECSYS_HOME": str(home)}
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                            check=True, timeout=300)
    recommended = json.loads(output.stdout)
    rated = {int(line.split("::")[1]) for line in Path(data, "ratings.dat").read_text().splitlines()
             if line.startswith("1::")}
    assert len(recommended) == 50
    assert len(rated) == 53
    assert not rated & set(recommended)
