"""Quality evaluation on standard protocols: splits, metrics, baselines and reports.

`evaluate` trains a model on a protocol's training split and reports its test metrics
beside random, popularity and (for new users) per-demographic popularity baselines.
docs/evaluation.md defines the protocols.
"""

from towhee_recsys.evaluation.protocols import PROTOCOLS, ProtocolSplit, make_split
from towhee_recsys.evaluation.ranking import RankStage
from towhee_recsys.evaluation.report import EvaluationReport, MetricTable, ProtocolReport
from towhee_recsys.evaluation.runner import DEFAULT_SEED, evaluate, read_imputed_timestamps

__all__ = [
    "DEFAULT_SEED",
    "PROTOCOLS",
    "EvaluationReport",
    "MetricTable",
    "ProtocolReport",
    "ProtocolSplit",
    "RankStage",
    "evaluate",
    "make_split",
    "read_imputed_timestamps",
]
