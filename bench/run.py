"""Benchmark towhee_recsys against the raw parts it is built from, and write docs/benchmarks.md.

    python bench/run.py --data /path/to/ml-1m            # every section, 7 to 11 minutes on 2 cores
    python bench/run.py --only latency,ingest            # some sections
    python bench/run.py --synthetic --quick              # a small generated dataset, seconds

Everything runs in a temporary folder that is removed at the end. The only process
started is `towhee-recsys serve` on 127.0.0.1 for the http section. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from benchlib import batch, http, ingest, latency, startup, training
from benchlib.report import Row, plain_table, python_command, render_page, skipped
from benchlib.workspace import Workspace, load_dataset

REPOSITORY = Path(__file__).resolve().parent.parent
# Run order. Ingest goes last because its million generated movies leave a large heap and
# threads behind, which should not slow down the latency figures.
SECTIONS = ("startup", "training", "latency", "batch", "http", "ingest")
NOTES = {
    "startup": startup.NOTES,
    "training": training.NOTES,
    "ingest": ingest.NOTES,
    "latency": latency.NOTES,
    "batch": batch.NOTES,
    "http": http.NOTES,
}
logger = logging.getLogger("bench")


# Settings of a full run and of --quick; an option given on the command line wins over both.
FULL = {"epochs": 2, "calls": 500, "warmup": 50, "ingest_repeats": 3, "synthetic_movies": 1_000_000,
        "load_clients": 50, "load_seconds": 60.0, "repeats": 5}
QUICK = {"epochs": 1, "calls": 50, "warmup": 10, "ingest_repeats": 1, "synthetic_movies": 20_000,
         "load_clients": 8, "load_seconds": 5.0, "repeats": 2}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark towhee_recsys next to the raw parts it is built from.")
    parser.add_argument("--data", default=os.environ.get("TOWHEE_RECSYS_ML1M"),
                        help="MovieLens 1M folder or ml-1m.zip (default: $TOWHEE_RECSYS_ML1M)")
    parser.add_argument("--synthetic", action="store_true",
                        help="use a small generated dataset instead of MovieLens 1M (checks the script, not speed)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})")
    parser.add_argument("--output", default=str(REPOSITORY / "docs" / "benchmarks.md"),
                        help="Markdown file to write, '-' for none (default: docs/benchmarks.md)")
    parser.add_argument("--quick", action="store_true", help="short settings, shown as the second default below")
    numbers = (
        ("--epochs", int, "training epochs; the model of every section"),
        ("--calls", int, "timed single recommendations, in process and over HTTP"),
        ("--warmup", int, "untimed calls before the timed ones"),
        ("--ingest-repeats", int, "runs of the catalog ingest and of its floor"),
        ("--synthetic-movies", int, "generated movies of the large ingest; 0 skips it"),
        ("--load-clients", int, "concurrent HTTP clients of the load test"),
        ("--load-seconds", float, "seconds of the load test; 0 skips it"),
        ("--repeats", int, "fresh processes per startup measurement"),
    )
    for option, kind, text in numbers:
        key = option[2:].replace("-", "_")
        parser.add_argument(option, type=kind, help=f"{text} (default: {FULL[key]:,}; with --quick {QUICK[key]:,})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled users and generated movies")
    parser.add_argument("--verbose", action="store_true", help="log the progress of each section")
    args = parser.parse_args(argv)

    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.sections = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)} in --only; choose from {', '.join(SECTIONS)}")
    if not args.synthetic and not args.data:
        parser.error("pass --data /path/to/ml-1m (or set TOWHEE_RECSYS_ML1M), or --synthetic")
    for key in ("epochs", "calls", "ingest_repeats", "load_clients", "repeats"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be at least 1")
    for key in ("warmup", "synthetic_movies", "load_seconds"):
        if getattr(args, key) < 0:
            parser.error(f"--{key.replace('_', '-')} must be at least 0")
    return args


def run_sections(args: argparse.Namespace, workspace: Workspace) -> list[Row]:
    """Run the selected sections in a fixed order and collect their rows.

    A section that fails adds a row with the error and the run goes on, so one broken
    part does not hide the others' numbers.
    """
    steps = {
        "startup": lambda: startup.run(args.repeats),
        "training": lambda: training.run(workspace, args.epochs),
        "ingest": lambda: ingest.run(workspace, args.ingest_repeats, args.synthetic_movies),
        "latency": lambda: latency.run(workspace, args.calls, args.warmup, args.seed),
        "batch": lambda: batch.run(workspace, args.seed),
        "http": lambda: http.run(workspace, args.calls, args.warmup, args.load_clients, args.load_seconds, args.seed),
    }
    rows: list[Row] = []
    for name in SECTIONS:
        if name not in args.sections:
            continue
        if name != "training" and name != "startup" and workspace.model is None:
            workspace.ensure_model(args.epochs)
        logger.info("Running section %s", name)
        started = time.perf_counter()
        try:
            section_rows = steps[name]()
        except Exception as error:  # noqa: BLE001 - report the failure as a row and go on
            logger.exception("Section %s failed", name)
            section_rows = [skipped(name, "section failed", f"{type(error).__name__}: {error}")]
        logger.info("Section %s took %.1f s", name, time.perf_counter() - started)
        rows += section_rows
        print(plain_table(section_rows), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # force: importing towhee installs a handler on the root logger already.
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    logging.getLogger("milvus_lite").setLevel(logging.WARNING)  # it logs every background index build
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

    started_at = datetime.datetime.now().astimezone()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="towhee_recsys_bench_") as folder:
        dataset, is_movielens = load_dataset(args.data, args.synthetic)
        workspace = Workspace(Path(folder), dataset, is_movielens)
        rows = run_sections(args, workspace)
    seconds = time.perf_counter() - started

    print()
    print(plain_table(rows))
    if args.output != "-":
        notes = [note for name in SECTIONS if name in args.sections for note in NOTES[name]]
        page = render_page(rows, python_command(), started_at, seconds, notes, REPOSITORY)
        Path(args.output).write_text(page + "\n", encoding="utf-8")
        print(f"\nWrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
