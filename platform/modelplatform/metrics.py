"""Prometheus metrics: per-inference counters and latencies, the audit writer and its spool, what is loaded.

One :class:`Metrics` per app, on its own ``CollectorRegistry`` (several apps in one process, as in
the tests, never collide). Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set by the master
(:mod:`modelplatform.forkenv`) before any worker imports prometheus-client, so every worker writes its values
to files there and ``/metrics`` (answered by whichever worker) adds them all up (the directory reaches
:class:`Metrics` as ``Settings.metrics_dir``); ``child_exit`` marks a dead worker's gauges gone. Without it the
app's own registry is exposed.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from modelplatform.audit import AuditLog, InferenceRecord
from modelplatform.audit.base import AuditHealth
from modelplatform.registry import Registry

# predictions take from tens of microseconds (a lookup table) to seconds (a large ensemble)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The platform's metrics, registered on a private registry."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        """``multiprocess_dir``: the gunicorn master's metrics directory (``Settings.metrics_dir``), whose files
        ``render`` sums across workers; None: this app's own values."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = multiprocess_dir
        r = self.registry
        self.predictions = Counter(
            "modelplatform_predictions", "Requests that reached a model version, by outcome",
            ["model", "version", "status", "routed_by"], registry=r)
        self.predict_latency = Histogram(
            "modelplatform_predict_latency_seconds", "Validate + predict + encode + record, per version",
            ["model", "version", "routed_by"], buckets=LATENCY_BUCKETS, registry=r)
        self.audit_write = Histogram(
            "modelplatform_audit_write_seconds", "Time to durably store one inference record",
            buckets=LATENCY_BUCKETS, registry=r)
        self.audit_failures = Counter(
            "modelplatform_audit_write_failures", "Inference records that could not be stored (answered 503)",
            registry=r)
        # what the group-commit writer reports (AuditMeter): batches, rows the database refused, the spool
        self.audit_batches = Counter(
            "modelplatform_audit_batches", "Batches the audit writer committed (one INSERT each)", registry=r)
        self.audit_rows_committed = Counter(
            "modelplatform_audit_rows_committed", "Rows committed by the audit writer's batches (rows per batch: "
            "this / modelplatform_audit_batches_total)", registry=r)
        self.audit_rows_rejected = Counter(
            "modelplatform_audit_rows_rejected", "Rows the database refused as data errors (answered 503, not spooled)",
            registry=r)
        # "livesum": the records waiting in the spools of the live workers (a dead worker's file is replayed by the
        # next process that starts, and is counted again only then)
        self.spool_depth = Gauge(
            "modelplatform_audit_spool_depth", "Records in the local outage spool, not yet replayed into Postgres",
            multiprocess_mode="livesum", registry=r)
        self.spooled = Counter(
            "modelplatform_audit_spooled", "Records written to the outage spool while Postgres was unreachable",
            registry=r)
        self.spool_replayed = Counter(
            "modelplatform_audit_spool_replayed", "Spooled records replayed into Postgres", registry=r)
        self.spool_dead_lettered = Counter(
            "modelplatform_audit_spool_rejected", "Spooled records the database refused at replay, kept in the "
            "spool directory's rejected-*.jsonl files (look at them)", registry=r)
        self.http_requests = Counter(
            "modelplatform_http_requests", "HTTP requests by route template, method and status",
            ["endpoint", "method", "status"], registry=r)
        self.http_latency = Histogram(
            "modelplatform_http_request_seconds", "HTTP request duration by route template",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        # "livemax": a dead worker's value disappears, so after a reload only the new config shows
        self.versions_loaded = Gauge(
            "modelplatform_model_versions_loaded", "Active versions loaded, per model",
            ["model"], multiprocess_mode="livemax", registry=r)
        self.config_info = Gauge(
            "modelplatform_config_info", "The config being served (1 per live revision)",
            ["revision", "source"], multiprocess_mode="livemax", registry=r)
        # labelled children by label values: `labels()` takes a lock and rebuilds the key on every call,
        # a cost on every request. Bounded: label values come from the config and route templates
        self._record_children: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def loaded(self, registry: Registry) -> None:
        for model in registry:
            self.versions_loaded.labels(model.name).set(len(model.versions))
        self.config_info.labels(registry.config.revision, registry.config.source).set(1)

    def observe_record(self, record: InferenceRecord) -> None:
        key = (record.model, record.version, record.status, record.routed_by)
        children = self._record_children.get(key)
        if children is None:
            latency = self.predict_latency.labels(record.model, record.version, record.routed_by)
            children = self._record_children[key] = (self.predictions.labels(*key), latency)
        children[0].inc()
        children[1].observe(record.latency_ms / 1000.0)

    def observe_http(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = (endpoint, method, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children[key] = (
                self.http_requests.labels(endpoint, method, str(status)), self.http_latency.labels(endpoint))
        children[0].inc()
        children[1].observe(seconds)

    # -- modelplatform.audit.base.AuditMeter: called by the audit writer (its thread or greenlet) ---------------

    def batch_committed(self, rows: int, rejected: int) -> None:
        self.audit_batches.inc()
        self.audit_rows_committed.inc(rows - rejected)
        if rejected:
            self.audit_rows_rejected.inc(rejected)

    def spool_changed(self, depth: int, *, spooled: int = 0, replayed: int = 0, dead_lettered: int = 0) -> None:
        self.spool_depth.set(depth)
        if spooled:
            self.spooled.inc(spooled)
        if replayed:
            self.spool_replayed.inc(replayed)
        if dead_lettered:
            self.spool_dead_lettered.inc(dead_lettered)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type: every worker's values under gunicorn, else this app's."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=str(self.multiprocess_dir))
        return generate_latest(combined), CONTENT_TYPE_LATEST


class MeteredAuditLog:
    """An :class:`AuditLog` that times each write and counts each stored record, and nothing else.

    Every request that reaches a model version produces exactly one record, so counting records here
    counts predictions by their real outcome without the data plane knowing about metrics.
    """

    def __init__(self, inner: AuditLog, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def record(self, record: InferenceRecord) -> None:
        started = time.perf_counter()
        try:
            self._inner.record(record)
        except Exception:
            self._metrics.audit_failures.inc()
            raise
        finally:
            self._metrics.audit_write.observe(time.perf_counter() - started)
        self._metrics.observe_record(record)

    def health(self) -> AuditHealth:
        return self._inner.health()

    def close(self) -> None:
        self._inner.close()
