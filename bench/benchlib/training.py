"""Training time per epoch, through towhee_recsys.train()."""

from __future__ import annotations

import statistics
import time

from benchlib.report import Row
from benchlib.workspace import Workspace

SECTION = "training"
TARGET_SECONDS_PER_EPOCH = 10.0
NOTES = [
    "**training**: `towhee_recsys.train(dataset, ModelConfig(epochs=N))` on the whole dataset with the default "
    "configuration; the value is the median of the per-epoch seconds that training records in the model's "
    "history (each epoch includes its validation RMSE pass). The model is saved and used by every later section.",
]


def run(workspace: Workspace, epochs: int) -> list[Row]:
    """Train the workspace's model for `epochs` epochs and report seconds per epoch."""
    from towhee_recsys import ModelConfig, train

    started = time.perf_counter()
    model = train(workspace.dataset, ModelConfig(epochs=epochs), model_dir=workspace.model_dir, show_progress=False)
    total = time.perf_counter() - started
    workspace.model = model

    per_epoch = [float(record["seconds"]) for record in model.history]
    median = statistics.median(per_epoch)
    target = workspace.is_movielens
    epochs_text = ", ".join(f"{seconds:.1f}" for seconds in per_epoch)
    return [
        Row(
            SECTION,
            f"seconds per epoch ({workspace.dataset.name}, {len(workspace.dataset.ratings):,} ratings)",
            median,
            "s",
            target=f"<= {TARGET_SECONDS_PER_EPOCH:g} s" if target else "",
            passed=median <= TARGET_SECONDS_PER_EPOCH if target else None,
            note=f"epochs: {epochs_text} s",
        ),
        Row(SECTION, f"train() wall time, {epochs} epochs", total, "s",
            note="includes the vocabularies, the split and saving the model"),
    ]
