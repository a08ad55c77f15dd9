"""The Prometheus rules and the Grafana dashboard shipped in deploy/ parse, and name only
metrics the gateway exports: a renamed metric must not leave a rule that never fires."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from seamline.gateway.metrics import GatewayMetrics
from seamline.runtime.scraper import EngineScraper

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_METRIC = re.compile(r"\bseamline_[a-z0-9_]+")
_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")


def _exported() -> set[str]:
    metrics = GatewayMetrics()
    metrics.watch_engines(EngineScraper([]), lambda: 0)  # the engines' series, empty
    families = {family.name for family in metrics.registry.collect()}
    return {name + suffix for name in families for suffix in _SUFFIXES}


def test_the_alert_rules_name_exported_metrics() -> None:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "seamline-alerts.yml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 8 and all(rule["alert"].startswith("Seamline") for rule in rules)
    named = {m for rule in rules for m in _METRIC.findall(rule["expr"])}
    assert named and named <= _exported(), named - _exported()


def test_the_dashboard_names_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "seamline-gateway.json").read_text())
    targets = [t for panel in dashboard["panels"] for t in panel["targets"]]
    named = {m for target in targets for m in _METRIC.findall(target["expr"])}
    assert len(dashboard["panels"]) >= 10 and named <= _exported(), named - _exported()
