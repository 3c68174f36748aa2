"""Draw docs/images/quality_validation.png from the JSON report of `towhee-recsys evaluate`.

    towhee-recsys evaluate --protocol all --data PATH --output report.json
    python docs/images/make_quality_plot.py report.json

One panel per protocol: the validation metric of every training epoch, with the epoch
that evaluation kept (the best validation score) marked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot is imported

OUTPUT = Path(__file__).with_name("quality_validation.png")

# Protocol name -> (history keys to draw, panel title, key that chose the epoch, higher is better).
PANELS = {
    "recbole": (("val_Recall@10", "val_NDCG@10"), "recbole (P1): validation split", "val_NDCG@10", True),
    "leave-last-out": (
        ("val_HR@10", "val_NDCG@10"), "leave-last-out (P2): second-latest rating", "val_NDCG@10", True
    ),
    "rating": (("val_RMSE",), "rating: validation RMSE (lower is better)", "val_RMSE", False),
}


def main(report_path: str) -> None:
    protocols = {item["protocol"]: item for item in json.loads(Path(report_path).read_text())["protocols"]}
    shown = [name for name in PANELS if name in protocols and protocols[name]["history"]]
    if not shown:
        raise SystemExit(f"{report_path} has no training history of {', '.join(PANELS)}")
    figure, axes = plt.subplots(1, len(shown), figsize=(5.2 * len(shown), 3.8), squeeze=False)
    for axis, name in zip(axes[0], shown, strict=True):
        history = protocols[name]["history"]
        keys, title, chosen_by, higher = PANELS[name]
        epochs = [record["epoch"] for record in history]
        for key in keys:
            if key in history[0]:
                axis.plot(epochs, [record[key] for record in history], marker="o", label=key.removeprefix("val_"))
        sign = 1.0 if higher else -1.0
        best = max(history, key=lambda record: sign * record[chosen_by])["epoch"]
        axis.axvline(best, color="grey", linestyle=":", label=f"kept: epoch {best}")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(OUTPUT, dpi=100)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python docs/images/make_quality_plot.py REPORT.json")
    main(sys.argv[1])
