"""Gap: API Gateway publishes metrics for every request to a REST API; the local API (api_server.py) stands in for
it and published none, so alarms on the prediction API (the canary's error-rate and latency alarms) could never
fire offline.

Each answered request is recorded as API Gateway records it: `Count` 1, `4XXError` and `5XXError` 1 or 0 (their
Average is the error rate), `Latency` (request received to response sent, ms) and, when the request reached its
Lambda integration, `IntegrationLatency`. They are put into CloudWatch (namespace `AWS/ApiGateway`, dimensions
`ApiName` + `Stage`, and `ApiName` alone) once a second as raw values, so every statistic, percentiles included,
and the alarms on them are evaluated as on AWS. The `Method`/`Resource` dimensions (detailed metrics, off by
default on AWS) are not published.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends

NAMESPACE = "AWS/ApiGateway"


class ApiMetrics:
    """Requests recorded since the last flush, put into the account and region's CloudWatch on `flush()`."""

    def __init__(self, account_id: str, region: str, stage: str, api_name: Callable[[], str]) -> None:
        self._account_id = account_id
        self._region = region
        self._stage = stage
        self._api_name = api_name
        self._name: str | None = None
        self._lock = threading.Lock()
        self._values: dict[str, list[float]] = {}

    def record(self, status: int, latency_ms: float) -> None:
        """One answered request (any status, refusals included, as API Gateway counts them)."""
        with self._lock:
            for name, value in (("Count", 1.0), ("4XXError", float(400 <= status < 500)),
                                ("5XXError", float(status >= 500)), ("Latency", round(latency_ms, 3))):
                self._values.setdefault(name, []).append(value)

    def integration(self, latency_ms: float) -> None:
        """The time the Lambda integration took for one request."""
        with self._lock:
            self._values.setdefault("IntegrationLatency", []).append(round(latency_ms, 3))

    def flush(self) -> None:
        """Put what was recorded since the last flush (nothing when no request came)."""
        with self._lock:
            values, self._values = self._values, {}
        if not values:
            return
        if self._name is None:
            self._name = self._api_name()
        data: list[dict[str, Any]] = []
        for dimensions in ([{"Name": "ApiName", "Value": self._name}, {"Name": "Stage", "Value": self._stage}],
                           [{"Name": "ApiName", "Value": self._name}]):
            for metric, recorded in values.items():
                unit = "Milliseconds" if metric.endswith("Latency") else "Count"
                data.append({"MetricName": metric, "Dimensions": dimensions, "Values": recorded, "Unit": unit})
        cloudwatch_backends[self._account_id][self._region].put_metric_data(NAMESPACE, data)
