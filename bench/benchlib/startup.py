"""Wall time of `import towhee_recsys` and `towhee-recsys --help` in fresh processes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from benchlib.report import Row
from benchlib.timing import median_subprocess_seconds

SECTION = "startup"
IMPORT_TARGET = 1.0
HELP_TARGET = 0.5
NOTES = [
    "**startup**: median wall time of N fresh processes each. The floor of `import towhee_recsys` is "
    "`import towhee`, which it needs for the operator registry; the floor of `towhee-recsys --help` is "
    "the interpreter starting and exiting (`python -c pass`).",
]


def cli_command() -> list[str]:
    """Return the command that runs `towhee-recsys`: the console script next to this Python, else `-m`."""
    script = Path(sys.executable).with_name("towhee-recsys")
    if script.exists():
        return [str(script)]
    found = shutil.which("towhee-recsys")
    return [found] if found else [sys.executable, "-m", "towhee_recsys.cli"]


def run(repeats: int) -> list[Row]:
    """Measure the import and --help times and their floors, `repeats` processes each."""
    python = sys.executable
    interpreter = median_subprocess_seconds([python, "-c", "pass"], repeats)
    towhee = median_subprocess_seconds([python, "-c", "import towhee"], repeats)
    package = median_subprocess_seconds([python, "-c", "import towhee_recsys"], repeats)
    cli_help = median_subprocess_seconds([*cli_command(), "--help"], repeats)
    return [
        Row(SECTION, "import towhee_recsys", package, "s", floor=towhee, floor_name="import towhee",
            target=f"<= {IMPORT_TARGET:g} s", passed=package <= IMPORT_TARGET, note=f"median of {repeats}"),
        Row(SECTION, "towhee-recsys --help", cli_help, "s", floor=interpreter, floor_name="python -c pass",
            target=f"<= {HELP_TARGET:g} s", passed=cli_help <= HELP_TARGET, note=f"median of {repeats}"),
    ]
