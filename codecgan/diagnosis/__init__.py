"""Diagnosis of GAN audio training runs: metric histories, the rules that name failures, and their reports.

One implementation serves both the live callbacks (`callbacks/`) and `codecgan diagnose`.
"""

from codecgan.diagnosis.findings import SEVERITIES, Finding
from codecgan.diagnosis.history import HistoryError, MetricHistory, Point, load_histories
from codecgan.diagnosis.registry import REGISTRY, RULES, run_rules
from codecgan.diagnosis.report import diagnose_history, diagnose_path, rank, render_json, render_text

__all__ = [
    "Finding",
    "HistoryError",
    "MetricHistory",
    "Point",
    "REGISTRY",
    "RULES",
    "SEVERITIES",
    "diagnose_history",
    "diagnose_path",
    "load_histories",
    "rank",
    "render_json",
    "render_text",
    "run_rules",
]
