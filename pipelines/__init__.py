"""Declarative Towhee pipelines built from the towhee_recsys operators."""

from towhee_recsys.pipelines.check import CatalogCheck, check_catalog
from towhee_recsys.pipelines.ingest import IngestPipeline, IngestReport, build_ingest_dag, ingest_pipeline
from towhee_recsys.pipelines.recommend import RecommendPipeline, build_recommend_dag, recommend_pipeline

__all__ = [
    "CatalogCheck",
    "check_catalog",
    "IngestPipeline",
    "IngestReport",
    "RecommendPipeline",
    "build_ingest_dag",
    "build_recommend_dag",
    "ingest_pipeline",
    "recommend_pipeline",
]
