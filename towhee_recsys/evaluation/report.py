"""Evaluation results: metric tables per protocol, with timings, history and JSON/Markdown output."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from towhee_recsys.validation import invalid_parameter

# Published MovieLens 1M results that this project compares itself with. They were not
# re-run or re-checked here. "recbole": entries of RecBole's ML-1M benchmark for general
# recommendation. "leave-last-out": DSSM with a leave-last-out split. "rating": SVD++.
REFERENCES: dict[str, dict[str, dict[str, float]]] = {
    "recbole": {
        "Pop (published)": {"Recall@10": 0.070, "NDCG@10": 0.101},
        "BPR (published)": {"Recall@10": 0.173, "NDCG@10": 0.241},
        "SimpleX (published)": {"Recall@10": 0.200, "NDCG@10": 0.270},
        "RecVAE (published)": {"Recall@10": 0.216},
        "ADMMSLIM (published)": {"NDCG@10": 0.290},
    },
    "leave-last-out": {"DSSM (published)": {"HR@50": 0.356}},
    "rating": {"SVD++ (published)": {"RMSE": 0.862}},
}

# A table with more metric columns than this is printed as one table per cutoff.
MAX_COLUMNS = 10


@dataclass
class MetricTable:
    """One comparison: a row of metrics for each system on the same test users.

    Attributes:
        title: what was measured, e.g. "test, training and validation movies masked".
        columns: metric names in display order, e.g. "Recall@10".
        rows: system name to metric values, the model's rows first and the baselines after.
        references: published results shown below the rows, with "-" for a missing metric.
        notes: caveats printed under the table.
        served_overlap: mean share of movies that the served and the exact top-50 lists
            of a user have in common, or None without a served pass.
    """

    title: str
    columns: list[str]
    rows: dict[str, dict[str, float]]
    references: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    served_overlap: float | None = None

    def to_markdown(self) -> str:
        """Format the table as Markdown, one table per cutoff when it has many columns."""
        groups = _column_groups(self.columns)
        parts = [f"**{self.title}**\n"]
        for columns in groups:
            parts.append(_markdown_table(columns, self.rows, self.references) + "\n")
        parts.extend(f"Note: {note}\n" for note in self.notes)
        if self.served_overlap is not None:
            parts.append(
                f"Served and exact top lists share {self.served_overlap:.2%} of their movies; a difference comes "
                "from the vector index or from ties in score.\n"
            )
        return "\n".join(parts)


@dataclass
class ProtocolReport:
    """Everything measured under one protocol.

    Attributes:
        protocol: "recbole", "leave-last-out" or "rating".
        dataset: the dataset name.
        seed: seed of the split, the baselines and the model.
        split: numbers of users, movies and ratings kept, and of each split part.
        tables: the metric tables, test results first.
        history: one record per training epoch, with the validation metrics.
        timings: wall seconds of each phase (training, exact scoring, served search, ...).
        config: the model configuration used.
        notes: caveats that apply to the whole protocol.
        approximate: True when the split depends on imputed data (see notes).
    """

    protocol: str
    dataset: str
    seed: int
    split: dict[str, int]
    tables: list[MetricTable]
    history: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    approximate: bool = False

    def table(self, title_start: str) -> MetricTable:
        """Return the first table whose title starts with `title_start`."""
        for table in self.tables:
            if table.title.startswith(title_start):
                return table
        raise invalid_parameter("title_start", f"the start of one of {[t.title for t in self.tables]}", title_start)

    def to_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))

    def to_markdown(self) -> str:
        """Format the protocol's tables, split sizes, timings and history as Markdown."""
        label = " (approximate)" if self.approximate else ""
        lines = [f"## Protocol `{self.protocol}`{label} on {self.dataset}, seed {self.seed}", ""]
        lines.append("Split: " + ", ".join(f"{name} {value:,}" for name, value in self.split.items()))
        lines.append("")
        lines.extend(f"Note: {note}\n" for note in self.notes)
        lines.extend(table.to_markdown() for table in self.tables)
        if self.timings:
            lines.append("Wall time: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.timings.items()))
            lines.append("")
        if self.history:
            lines.append(_history_markdown(self.history))
        return "\n".join(lines)


@dataclass
class EvaluationReport:
    """The results of `evaluate`: one ProtocolReport per protocol run."""

    protocols: list[ProtocolReport]

    def __getitem__(self, protocol: str) -> ProtocolReport:
        for report in self.protocols:
            if report.protocol == protocol:
                return report
        raise KeyError(protocol)

    def to_dict(self) -> dict[str, Any]:
        return {"protocols": [report.to_dict() for report in self.protocols]}

    def to_markdown(self) -> str:
        return "\n".join(report.to_markdown() for report in self.protocols)


def _column_groups(columns: list[str]) -> list[list[str]]:
    if len(columns) <= MAX_COLUMNS:
        return [columns]
    groups: dict[str, list[str]] = {}
    for column in columns:
        groups.setdefault(column.rpartition("@")[2], []).append(column)
    return list(groups.values())


def _markdown_table(
    columns: list[str],
    rows: dict[str, dict[str, float]],
    references: dict[str, dict[str, float]],
    first_column: str = "system",
) -> str:
    shown_references = {name: values for name, values in references.items() if any(c in values for c in columns)}
    body = [[name, *(_format(values.get(column)) for column in columns)] for name, values in rows.items()]
    body += [[name, *(_format(values.get(column)) for column in columns)] for name, values in shown_references.items()]
    header = [first_column, *columns]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        numbers = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        padded = [cells[0].ljust(widths[0]), *numbers]
        return "| " + " | ".join(padded) + " |"

    separator = "|" + "|".join(["-" * (widths[0] + 2), *("-" * (w + 1) + ":" for w in widths[1:])]) + "|"
    return "\n".join([line(header), separator, *(line(row) for row in body)])


def _history_markdown(history: list[dict[str, Any]]) -> str:
    rows = {str(record.get("epoch", i + 1)): _numbers(record) for i, record in enumerate(history)}
    keys: list[str] = []
    for values in rows.values():
        keys.extend(key for key in values if key not in keys and key != "epoch")
    table = _markdown_table(keys, rows, {}, first_column="epoch")
    return "Training history (validation metrics on the validation split):\n\n" + table + "\n"


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    return {key: value for key, value in record.items() if isinstance(value, (int, float))}


def _format(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 100:
        return f"{int(value):,}"
    return f"{value:.4f}"


def _finite(value: Any) -> Any:
    """Replace NaN and infinities with None, so that the dict is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
