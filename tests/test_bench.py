"""Smoke test of bench/run.py: every section runs on a small generated dataset and the page is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
SECTIONS = ("startup", "training", "latency", "batch", "http", "ingest")


def test_bench_quick_run_writes_page(tmp_path):
    output = tmp_path / "benchmarks.md"
    command = [
        sys.executable, str(REPOSITORY / "bench" / "run.py"), "--synthetic", "--quick",
        "--synthetic-movies", "3000", "--load-seconds", "2", "--load-clients", "4",
        "--calls", "20", "--warmup", "5", "--repeats", "1", "--output", str(output),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]

    page = output.read_text(encoding="utf-8")
    assert "## Results" in page
    assert "--synthetic --quick" in page
    assert "Logical cores:" in page
    assert "pymilvus" in page
    for section in SECTIONS:
        assert f"| {section} |" in page, f"no row of section {section}"
    assert "section failed" not in page, page
    assert "| skipped |" not in page, page
    assert "| load test errors (4 clients, 2 s) | 0 |" in page
    assert completed.stdout.count("recommend p50, pipeline") >= 1
