"""Model folder format: config.json, vocabularies.json and weights.npz.

Loading never unpickles: weights are read with ``numpy.load(allow_pickle=False)`` and
everything else is JSON. ``config.json`` is written last, so a folder without it is an
interrupted save and is rejected.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from towhee_recsys.errors import ModelError

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
VOCABULARIES_FILE = "vocabularies.json"
WEIGHTS_FILE = "weights.npz"


def write_model_folder(
    model_dir: str | os.PathLike,
    config: dict[str, Any],
    vocabularies_json: str,
    weights: dict[str, np.ndarray],
) -> str:
    """Write a model folder and return its fingerprint (SHA-256 of vocabularies and weights)."""
    folder = Path(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).unlink(missing_ok=True)

    _write_atomic(folder / VOCABULARIES_FILE, vocabularies_json.encode("utf-8"))
    weights_tmp = folder / (WEIGHTS_FILE + ".tmp.npz")
    np.savez(weights_tmp, **weights)
    os.replace(weights_tmp, folder / WEIGHTS_FILE)

    fingerprint = _fingerprint(folder)
    document = {"format_version": FORMAT_VERSION, "fingerprint": fingerprint, **config}
    _write_atomic(folder / CONFIG_FILE, json.dumps(document, indent=1).encode("utf-8"))
    return fingerprint


def read_model_folder(model_dir: str | os.PathLike) -> tuple[dict[str, Any], str, dict[str, np.ndarray]]:
    """Read and check a model folder; return (config, vocabularies JSON, weights)."""
    folder = Path(model_dir)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise ModelError(
            f"No trained model in '{folder}' ({CONFIG_FILE} is missing). "
            "Run `towhee-recsys train` or `towhee-recsys demo` first, or pass the folder of a trained model."
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"Cannot read '{config_path}': {error}. Retrain the model.") from error

    version = config.get("format_version") if isinstance(config, dict) else None
    if version != FORMAT_VERSION:
        raise ModelError(
            f"Model folder '{folder}' has format version {version!r}, but this version of "
            f"towhee_recsys reads format version {FORMAT_VERSION}. Retrain it with `towhee-recsys train`."
        )

    try:
        vocabularies_json = (folder / VOCABULARIES_FILE).read_text(encoding="utf-8")
        with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as archive:
            weights = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ModelError(f"Model folder '{folder}' is incomplete or damaged: {error}. Retrain the model.") from error

    if _fingerprint(folder) != config.get("fingerprint"):
        raise ModelError(
            f"Model folder '{folder}' does not match its fingerprint: its files were changed "
            "or mixed from two trainings. Retrain the model."
        )
    return config, vocabularies_json, weights


def _fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in (VOCABULARIES_FILE, WEIGHTS_FILE):
        with open(folder / name, "rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
