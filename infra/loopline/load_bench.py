"""Load benchmark: concurrent clients against the local prediction API, next to the same load on the bare handler.

    python -m loopline.load_bench [--clients 32] [--requests 2000] [--output docs/load-benchmark.md]

It starts `loopline local up` on free ports, trains a champion on the bundled breast-cancer data, then:

- api: `--clients` threads, each with its own keep-alive HTTP connection, each sending `--requests` single-record
  `POST /predict` requests through the local API Gateway (x-api-key check, proxy event, the predict function in
  the emulator's worker processes);
- handler: the same number of threads and requests calling functions/predict/app.py's `lambda_handler` in this
  process with the same proxy event, against the same champion in the emulator's S3: the handler's own cost,
  without HTTP, the API layer or process hops.

An error is any answer other than 200 or any connection failure (reset, timeout); the report counts them by kind.
This is a benchmark, not a test: it takes minutes and its figures depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import yaml

from loopline.client import StackClient
from loopline.demo import local_stack
from loopline.emulator.local_access import CREDENTIALS, free_port
from loopline.examples import breast_cancer, split_batches
from loopline.local_lambda import LocalLambdaContext, import_function_app

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LoadResult:
    """Latencies (seconds) of the answered requests and the errors by kind, for one path under load."""

    name: str
    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_load(name: str, clients: int, requests: int, make_caller: Callable[[], Callable[[], int]]) -> LoadResult:
    """`clients` threads, each with its own caller (connection), each making `requests` calls; all start together."""
    result = LoadResult(name, clients)
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client() -> None:
        call = make_caller()
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        start.wait()
        for _ in range(requests):
            began = time.perf_counter()
            try:
                status = call()
            except Exception as exc:  # a benchmark counts every failure kind instead of stopping at the first
                errors[type(exc).__name__] += 1
                continue
            if status == 200:
                latencies.append(time.perf_counter() - began)
            else:
                errors[f"HTTP {status}"] += 1
        with lock:
            result.latencies.extend(latencies)
            result.errors.update(errors)

    threads = [threading.Thread(target=client, name=f"{name}-client-{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    result.wall_s = time.perf_counter() - began
    return result


def http_caller(url: str, api_key: str, body: bytes) -> Callable[[], Callable[[], int]]:
    """One keep-alive connection per client; a dropped connection is reopened (and its request counted an error)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + "/predict"
    headers = {"content-type": "application/json", "x-api-key": api_key}

    def make() -> Callable[[], int]:
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)

        def call() -> int:
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                return response.status
            except Exception:
                connection.close()
                raise

        return call

    return make


def load_predict_handler(environment: dict[str, str]) -> ModuleType:
    """functions/predict/app.py imported in this process with the deployed function's environment."""
    os.environ.update(environment)
    return import_function_app("predict", "loopline_load_predict_app")


def handler_caller(module: ModuleType, event: dict[str, Any]) -> Callable[[], Callable[[], int]]:
    def make() -> Callable[[], int]:
        def call() -> int:
            return int(module.lambda_handler(dict(event), _context())["statusCode"])

        return call

    return make


def _context() -> LocalLambdaContext:
    return LocalLambdaContext("PredictFunction", memory_limit_in_mb=2048, timeout_seconds=28,
                              aws_request_id="load-benchmark")


def proxy_event(body: str, api_key: str) -> dict[str, Any]:
    """The REST proxy event API Gateway sends for POST /predict (the fields the handler reads)."""
    return {
        "resource": "/predict", "path": "/predict", "httpMethod": "POST",
        "headers": {"content-type": "application/json", "x-api-key": api_key},
        "multiValueHeaders": {"content-type": ["application/json"], "x-api-key": [api_key]},
        "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": "/predict", "httpMethod": "POST", "path": "/Prod/predict",
                           "stage": "Prod", "requestId": "load-benchmark", "identity": {"sourceIp": "127.0.0.1"}},
        "body": body, "isBase64Encoded": False,
    }


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """The handler prints a log line and an EMF document per request; 64,000 of them would drown the report."""
    saved, sys.stdout = sys.stdout, io.StringIO()
    try:
        yield
    finally:
        sys.stdout = saved


def _fast_config(workdir: Path) -> Path:
    """pipeline.yaml with a one-setting search: the benchmark measures serving, not training."""
    data = yaml.safe_load((REPO_ROOT / "pipeline.yaml").read_text(encoding="utf-8"))
    data.setdefault("training", {})["time_budget_seconds"] = 5
    data["models"] = [{"name": "linear", "params": {"C": [1.0]}}]
    path = workdir / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def render(results: Sequence[LoadResult], *, requests: int, model_version: str) -> str:
    lines = [
        "# Load benchmark: the local prediction API under concurrent clients",
        "",
        f"Measured by `python -m loopline.load_bench` (`make bench`) on {os.cpu_count()} cores: each client sends "
        f"{requests:,} single-record `POST /predict` requests one after another, all clients at once; champion "
        f"`{model_version}`. `api` goes through the local API Gateway and the emulator's predict workers; "
        "`handler` calls the same handler in one process with the same event (no HTTP, no API layer).",
        "",
        "| path | clients | requests | errors | throughput | p50 | p99 | max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        errors = ", ".join(f"{count} {kind}" for kind, count in r.errors.most_common()) or "0"
        lines.append(
            f"| {r.name} | {r.clients} | {r.requests:,} | {errors} | {r.requests / r.wall_s:,.0f} req/s | "
            f"{_ms(r.percentile(0.50))} | {_ms(r.percentile(0.99))} | "
            f"{_ms(max(r.latencies)) if r.latencies else '-'} |"
        )
    lines += ["", "Latency is per request as the client saw it, queueing behind the other clients included.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loopline.load_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per client (default 2000)")
    parser.add_argument("--output", default="docs/load-benchmark.md", help="where to write the report ('-': nowhere)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="loopline-load-") as tmp:
        workdir = Path(tmp)
        aws_port, api_port = free_port(), free_port()
        print(f"load benchmark: starting the emulator (aws :{aws_port}, api :{api_port})", file=sys.stderr)
        with local_stack("loopline-load", config=_fast_config(workdir), workdir=workdir, aws_port=aws_port,
                         api_port=api_port):
            endpoint = f"http://127.0.0.1:{aws_port}"
            stack = StackClient("loopline-load", endpoint_url=endpoint)
            training, fresh = split_batches(breast_cancer(), [300, 50])
            known = {e["executionArn"] for e in stack.executions()}
            stack.upload_csv(training, "load.csv")
            stack.wait_for_execution(stack.wait_for_new_execution(known)["executionArn"], timeout=300)
            target = yaml.safe_load((REPO_ROOT / "pipeline.yaml").read_text(encoding="utf-8"))["target"]
            record = fresh.drop(columns=[target]).head(1).to_dict(orient="records")[0]
            body = json.dumps({"records": [record]})
            answer = stack.predict([record])
            if answer.status != 200:
                raise RuntimeError(f"the API does not answer before the load: {answer.status} {answer.text}")
            version = answer.body["model_version"]
            api_key = stack.api_key()
            total = args.clients * args.requests
            print(f"load benchmark: api, {args.clients} clients x {args.requests} requests = {total:,}",
                  file=sys.stderr)
            api = run_load("api", args.clients, args.requests,
                           http_caller(stack.outputs["PredictApiUrl"], api_key, body.encode("utf-8")))
            print(f"load benchmark: handler, {total:,} calls in this process", file=sys.stderr)
            resource = stack.client("cloudformation").describe_stack_resource(
                StackName="loopline-load", LogicalResourceId="PredictFunction")
            function_name = resource["StackResourceDetail"]["PhysicalResourceId"]
            predict = stack.client("lambda").get_function_configuration(FunctionName=function_name)
            environment = {**predict["Environment"]["Variables"], "AWS_ENDPOINT_URL": endpoint,
                           **CREDENTIALS,
                           "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_LOG_LEVEL": "WARNING"}
            with _quiet_stdout():
                module = load_predict_handler(environment)
                handler = run_load("handler", args.clients, args.requests,
                                   handler_caller(module, proxy_event(body, api_key)))
    report = render([api, handler], requests=args.requests, model_version=version)
    print(report)
    if args.output != "-":
        Path(args.output).write_text(report, encoding="utf-8")
        print(f"written to {args.output}", file=sys.stderr)
    return 0 if not api.errors and not handler.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
