"""Benchmark cases for ingest: the runtime's streaming ingest of the synthetic upload
against the IngestFunction's limits, next to a plain `pandas.read_csv` of the same file.

S3 is a moto server in its own process (as S3 is outside the Lambda), so the child's peak memory is the ingest's
own, not moto's copy of the upload. Imports only the standard library at top level, like loopline.bench.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BUCKET = "loopline-bench-ingest"
UPLOAD_KEY = "incoming/bench.csv"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server in a child process; yields its endpoint URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _die_with_parent() -> None:
    """Linux: the moto server gets SIGTERM when the case's process dies (a Lambda timeout is a SIGALRM kill,
    which runs no cleanup)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def child_ingest(workdir: Path) -> dict[str, Any]:
    """The runtime's ingest (`ingest_upload`, what the IngestFunction runs per record) on the synthetic upload."""
    from loopline.bench.cases import _aws_environment, reset_hwm, vm_hwm_kib
    from loopline.bench.limits import FunctionLimits

    plan = json.loads((workdir / "plan.json").read_text())
    limits = FunctionLimits(**plan["ingest_limits"])
    _aws_environment(limits, workdir / "config.yaml")
    with moto_server() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(workdir / "data.csv"), BUCKET, UPLOAD_KEY)
        t0 = time.perf_counter()
        from loopline_runtime.config import runtime_config
        from loopline_runtime.ingest import ingest_upload
        from loopline_runtime.storage import ObjectStore

        import_s = time.perf_counter() - t0
        config = runtime_config()
        store = ObjectStore(BUCKET, s3)
        size = (workdir / "data.csv").stat().st_size
        hwm_reset = reset_hwm()
        rss_before = vm_hwm_kib()
        t0, cpu0 = time.perf_counter(), time.process_time()
        outcome = ingest_upload(store, UPLOAD_KEY, config, size=size)
        ingest_s = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu0
        peak = vm_hwm_kib()
    return {"import_s": import_s, "ingest_s": ingest_s, "cpu_s": cpu_s, "hwm_kib": peak, "rss_before_kib": rss_before,
            "hwm_reset": hwm_reset, "csv_bytes": size, "outcome": outcome.to_dict(),
            "max_upload_mb": config.ingest.max_upload_mb}


def child_ingest_baseline(workdir: Path) -> dict[str, Any]:
    """Plain pandas: read the whole file at once (what ingest did before streaming)."""
    from loopline.bench.cases import vm_hwm_kib

    t0 = time.perf_counter()
    import pandas as pd

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = pd.read_csv(workdir / "data.csv")
    read_s = time.perf_counter() - t0
    return {"import_s": import_s, "read_s": read_s, "rows": len(frame), "hwm_kib": vm_hwm_kib()}


def ingest_section(runs: dict[str, Any], limits: Any) -> list[str]:
    """docs/benchmarks.md: ingest vs the IngestFunction's limits, next to a plain read_csv."""
    from loopline.bench.report import format_table, margin, megabytes, seconds

    ingest, base = runs.get("ingest"), runs.get("ingest_baseline")
    if ingest is None:
        return []
    lines = ["## Ingest vs limits", ""]
    if not ingest.ok:
        return [*lines, f"Ingest DID NOT COMPLETE (exit {ingest.exit_code}; log {ingest.log}).", ""]
    r = ingest.result
    peak_kib = r["hwm_kib"] if r.get("hwm_reset") else ingest.maxrss_kib
    peak_mb = peak_kib / 1024
    mb = r["csv_bytes"] / 1e6
    rate = mb / r["ingest_s"] if r["ingest_s"] else 0.0
    lines += [
        f"`ingest_upload` (what the IngestFunction runs per uploaded object: stream, parse and check in chunks, "
        f"profile a sample, write the dataset version) on the {mb:,.1f} MB upload, S3 a moto server in another "
        f"process; outcome **{r['outcome']['status']}**, {r['outcome'].get('rows', 0):,} rows. Baseline: "
        "`pandas.read_csv` of the same file, whole (what ingest did before streaming), in a fresh process.",
        "",
        format_table(
            ["", "Loopline ingest", f"IngestFunction ({limits.timeout_s} s, {limits.memory_mb:,} MB)",
             "baseline: `pd.read_csv` whole file"],
            [
                ["wall time", seconds(r["ingest_s"]), margin(r["ingest_s"], limits.timeout_s, "s"),
                 seconds(base.result.get("read_s")) if base and base.ok else "n/a"],
                ["peak RSS (incl. imports)", megabytes(peak_kib), margin(peak_mb, limits.memory_mb, "MB"),
                 megabytes(base.peak_kib) if base else "n/a"],
                ["CPU time", seconds(r.get("cpu_s")), "", ""],
                ["throughput", f"{rate:,.1f} MB/s" + (f" ({mb / r['cpu_s']:,.1f} MB per CPU second)"
                                                      if r.get("cpu_s") else ""), "", ""],
            ]),
        "",
        f"Peak RSS is the process's high-water mark from just before `ingest_upload` (imports included: "
        f"{megabytes(r.get('rss_before_kib'))} before it started). `ingest.max_upload_mb` defaults to "
        f"{r['max_upload_mb']:,} MB: at this rate an upload of that size takes about "
        f"{r['max_upload_mb'] / rate if rate else 0:,.0f} s of the {limits.timeout_s} s Timeout.",
        "",
    ]
    return lines
