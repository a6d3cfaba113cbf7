"""docs/benchmarks.md from the cases' results: formatting, the machine's facts, the report and its notes."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopline.bench import batch, chunk_scoring, ingest, monitoring, serving
from loopline.bench.cases import CaseRun
from loopline.bench.data import TARGET
from loopline.bench.limits import LAMBDA_MAX_MEMORY_MB, LAMBDA_MAX_TIMEOUT_S, FunctionLimits
from loopline.bench.phases import Phase, read_events


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pipes aligned, so it reads the same printed and rendered)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells[1:]]
    return "\n".join(lines)


def seconds(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.1f} s"


def megabytes(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:,.0f} MB"


def margin(used: float | None, limit: float, unit: str) -> str:
    """`limit - used`, with the share of the limit that is used ("OVER" when past it)."""
    if used is None:
        return "n/a"
    left = limit - used
    share = used / limit
    if left < 0:
        return f"OVER by {-left:,.0f} {unit} ({share:.0%} of {limit:,.0f} {unit})"
    return f"{left:,.0f} {unit} left ({share:.0%} of {limit:,.0f} {unit} used)"


def score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def machine_facts() -> dict[str, str]:
    import moto
    import numpy
    import pandas
    import sklearn

    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    memory = ""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal:")))
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return {"nproc": str(os.cpu_count()), "cpu": cpu or platform.processor(), "memory": memory,
            "python": platform.python_version(), "scikit-learn": sklearn.__version__, "pandas": pandas.__version__,
            "numpy": numpy.__version__, "moto": moto.__version__, "platform": platform.platform()}


@dataclass
class Report:
    command: str
    date: str
    facts: dict[str, str]
    rows: int
    columns: int
    seed: int
    train_limits: FunctionLimits
    predict_limits: FunctionLimits
    config_summary: str
    runs: dict[str, CaseRun]
    phases: list[Phase]
    events: list[dict[str, Any]]
    handler_s: float | None  # the train handler's wall time; its Timeout when Lambda's timeout killed it
    ingest_limits: FunctionLimits | None = None


def handler_seconds(run: CaseRun, events: Sequence[dict[str, Any]], limits: FunctionLimits) -> float | None:
    """The train handler's wall time: measured; or its Timeout when the child died of the Lambda timeout
    (SIGALRM); or, when it died otherwise, the last phase event's time (None when there is none)."""
    if run.ok and run.result.get("handler_s") is not None:
        return float(run.result["handler_s"])
    if run.exit_code == -signal.SIGALRM:
        return float(limits.timeout_s)
    return max((float(e["t"]) for e in events), default=None)


def train_peak_kib(run: CaseRun) -> int | None:
    """The train child's peak: the handler's own high-water mark if it could be reset after setup, else the
    whole process's (which then includes generating nothing, but parsing and ingesting the upload)."""
    if run.result.get("hwm_reset") and run.result.get("train_hwm_kib"):
        return int(run.result["train_hwm_kib"])
    return run.peak_kib


def render(report: Report) -> str:
    """docs/benchmarks.md: the figures, the baseline next to them, where the train time went, and the facts."""
    train, base = report.runs["train"], report.runs["baseline"]
    imports, predict = report.runs["imports"], report.runs.get("predict")
    tl, pl = report.train_limits, report.predict_limits
    manifest = train.result.get("manifest", {})
    handler_s = report.handler_s
    peak = train_peak_kib(train)
    peak_mb = None if peak is None else peak / 1024
    status = "completed" if train.ok else f"DID NOT COMPLETE (exit {train.exit_code}; see below)"

    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m loopline.bench`); do not edit by hand. Every case runs in a fresh",
        "Python process (imports count, as in a Lambda cold start); peak memory is that process's RSS high-water",
        "mark. S3 is a moto server in another process (for ingest and train: the stored objects do not count in",
        "the measured process; predict: moto in-process); S3 latency there is localhost, not AWS's.",
        "",
        f"- Command: `{report.command}`",
        f"- Date: {report.date}",
        f"- Machine: nproc={report.facts['nproc']}, {report.facts['cpu']}, {report.facts['memory']} RAM, "
        f"{report.facts['platform']}",
        f"- Python {report.facts['python']}, scikit-learn {report.facts['scikit-learn']}, pandas "
        f"{report.facts['pandas']}, numpy {report.facts['numpy']}, moto {report.facts['moto']}",
        "- Machine load, 1-min load average before -> after each case (other work shares these cores, so wall "
        "times are upper bounds): " + ", ".join(
            f"{run.case} {run.load_before:.1f} -> {run.load_after:.1f}" for run in report.runs.values()),
        f"- Data: synthetic, seeded ({report.seed}): {report.rows:,} rows x {report.columns} columns "
        f"(20 numeric with noise and missing values, 6 categorical of 3-1,500 levels, 2 boolean, 1 date, "
        f"binary target `{TARGET}`), {train.result.get('csv_bytes', 0) / 1e6:.1f} MB of CSV",
        f"- Train config: {report.config_summary}",
        "",
        *ingest.ingest_section(report.runs, report.ingest_limits),
        "## Train handler vs limits",
        "",
        f"The real train handler (functions/train/app.py -> `train_challenger`) on one dataset version written by "
        f"the ingest path: **{status}**.",
        "",
        format_table(["", "measured", f"TrainFunction ({tl.timeout_s} s, {tl.memory_mb:,} MB)",
                      f"Lambda max ({LAMBDA_MAX_TIMEOUT_S} s, {LAMBDA_MAX_MEMORY_MB:,} MB)"], [
            ["handler wall time", seconds(handler_s) + ("" if train.ok else " (killed)"),
             margin(handler_s, tl.timeout_s, "s"), margin(handler_s, LAMBDA_MAX_TIMEOUT_S, "s")],
            ["peak RSS (incl. imports)", megabytes(peak), margin(peak_mb, tl.memory_mb, "MB"),
             margin(peak_mb, LAMBDA_MAX_MEMORY_MB, "MB")],
            ["CPU time (all threads)", seconds(train.result.get("handler_cpu_s")), "", ""],
        ]),
        "",
        f"Outside the handler (same process, not counted above): handler imports "
        f"{seconds(train.result.get('handler_import_s'))} (+ boto3 {seconds(train.result.get('boto3_import_s'))}), "
        f"ingest of the upload {seconds(train.result.get('ingest_s'))}; process peak during setup "
        f"{megabytes(train.result.get('setup_hwm_kib'))}, whole process (wait4 ru_maxrss) "
        f"{megabytes(train.maxrss_kib)}.",
        "",
        "## Side by side: Loopline vs a plain scikit-learn baseline",
        "",
        f"Same rows, same seeded {manifest.get('holdout_rows') or base.result.get('holdout_rows', 'n/a')}-row "
        f"holdout. Baseline: one `HistGradientBoostingClassifier()` (defaults), categoricals ordinal-encoded, "
        f"the date as a day number, missing values left to the model.",
        "",
    ]
    metric = manifest.get("metric", "f1")
    chosen = manifest.get("estimator")
    lines += [format_table(
        ["", "Loopline train handler", "baseline: one HGB fit"],
        [
            ["wall time", seconds(handler_s), f"{seconds(base.result.get('fit_s'))} fit "
             f"(+ {seconds(base.result.get('prepare_s'))} read/encode)"],
            ["peak RSS (incl. imports)", megabytes(peak), megabytes(base.peak_kib)],
            [f"holdout {metric} (macro)" if metric == "f1" else f"holdout {metric}",
             score(manifest.get("holdout_score")), score(base.result.get("holdout_score"))],
            ["model", f"{chosen} {json.dumps(manifest.get('params', {}))}" if chosen else "n/a",
             "hist_gradient_boosting (defaults)"],
            ["model artifact", f"{manifest['artifact']['bytes'] / 1e6:.1f} MB (joblib, compress=3)"
             if manifest.get("artifact") else "n/a", ""],
        ])]
    lines += ["", "## Where the train time went", ""]
    rows_searched = train.result.get("search_rows")
    if rows_searched and manifest.get("training_rows"):
        searched = ", ".join(f"{r:,}" for r in rows_searched)
        how = (f"searched by successive halving (rungs of more rows, fewer settings; scored on a quarter of them) in "
               f"a sample of {searched}" if manifest.get("search_method") == "successive_halving" else
               f"cross-validated ({train.result.get('cv_folds')}-fold) on {searched}")
        lines += [f"Candidates were {how} rows; the winner was refit on all {manifest['training_rows']:,} training "
                  "rows.", ""]
    if report.phases:
        lines.append(format_table(["phase", "seconds", "share", "load at its end"], [
            [p.name + ("" if p.finished else " (unfinished: killed here)"), f"{p.seconds:.1f}",
             f"{p.seconds / handler_s:.0%}" if handler_s else "", "" if p.load is None else f"{p.load:.1f}"]
            for p in report.phases]))
    board = manifest.get("leaderboard") or []
    if board:
        lines += ["", f"Search leaderboard (search {metric} at the trial's last rung; rows = its training rows there; "
                      "elapsed = seconds since the search started; budget "
                      f"{manifest.get('search_budget_seconds')} s, exhausted: "
                      f"{manifest.get('search_budget_exhausted')}):",
                  "",
                  format_table(["candidate", "params", f"search {metric}", "rows", "elapsed"], [
                      [e["candidate"], json.dumps(e["params"]), score(e.get("cv_score")) if "cv_score" in e
                       else e.get("error", ""), f"{e['rows']:,}" if "rows" in e else "",
                       f"{e.get('elapsed_seconds', 0):.1f} s"] for e in board])]
    full = report.runs.get("train_full_search")
    if full is not None:
        lines += ["", *full_search_section(report, full)]
    lines += ["", "## Predict path", ""]
    if predict is not None and predict.ok:
        p = predict.result
        cold = p["boto3_import_s"] + p["app_import_s"] + p["first_request_s"]
        lines += [
            f"functions/predict/app.py imported in a fresh process, serving the model registered above "
            f"(PredictFunction: {pl.timeout_s} s, {pl.memory_mb:,} MB).",
            "",
            format_table(["", "predict handler", "baseline: `import sklearn, pandas` alone"], [
                ["imports", f"{seconds(p['boto3_import_s'] + p['app_import_s'])} (boto3 "
                 f"{seconds(p['boto3_import_s'])} + app {seconds(p['app_import_s'])})", seconds(imports.result.get(
                     "import_s"))],
                ["first request (load champion from S3, verify, load ONNX, predict)", seconds(p["first_request_s"]),
                 ""],
                ["cold start total (imports + first request)", seconds(cold), seconds(imports.result.get("import_s"))],
                ["peak RSS", megabytes(predict.peak_kib), megabytes(imports.peak_kib)],
                [f"warm single-record request, median of {p['warm_requests']} (p95)",
                 f"{seconds(p['warm_median_s'])} ({seconds(p['warm_p95_s'])})",
                 f"{seconds(base.result.get('warm_median_s'))} (baseline HGB, encode + predict_proba)"],
            ]),
        ]
    else:
        lines.append("Not measured: the train case registered no model.")
    lines += ["", *serving.render_section(report.runs)]
    lines += ["", *batch.batch_section(report.runs, report.rows)]
    lines += ["", *chunk_scoring.chunk_section(report.runs), *monitoring.monitor_section(report.runs)]
    lines += ["## Reading it", "", *report_notes(report, handler_s, peak_mb), ""]
    return "\n".join(lines)


def full_search_section(report: Report, full: CaseRun) -> list[str]:
    """The train handler with the search on every training row (as before SEARCH_MAX_ROWS), next to the default."""
    train = report.runs["train"]
    limits = report.train_limits
    events = read_events(full.log.parent / "train_full_search_progress.jsonl")
    invoke = next((e["t"] for e in events if e["event"] == "invoke"), 0.0)
    relative = [{**e, "t": e["t"] - invoke} for e in events if e["event"] not in ("invoke", "return")]
    full_s = handler_seconds(full, relative, limits)
    rows = []
    for label, run, handler_s in (("search on a sample (default)", train, report.handler_s),
                                  ("search on every training row", full, full_s)):
        manifest = run.result.get("manifest", {})
        board = manifest.get("leaderboard") or []
        searched = run.result.get("search_rows") or []
        rows.append([
            label, ", ".join(f"{r:,}" for r in searched) or "n/a",
            seconds(handler_s) + ("" if run.ok else " (killed)"),
            f"{max((e.get('elapsed_seconds', 0) for e in board), default=0):.0f} s / "
            f"{manifest.get('search_budget_seconds', 0):.0f} s" if board else "n/a",
            f"{len(board)}", megabytes(train_peak_kib(run)), score(manifest.get("holdout_score")),
            manifest.get("estimator", "n/a") + (f" {json.dumps(manifest.get('params'))}" if manifest.get("params")
                                                else ""),
        ])
    return ["## The search on a sample vs on every row", "",
            "The same handler, run again with `search_model(..., max_search_rows=<all rows>)` (the behaviour before "
            "modeling.SEARCH_MAX_ROWS); load at the start and end of each: train "
            f"{train.load_before:.1f} -> {train.load_after:.1f}, full search {full.load_before:.1f} -> "
            f"{full.load_after:.1f}.", "",
            format_table(["", "CV rows", "handler wall time", "search time / budget", "settings tried",
                          "peak RSS", "holdout score", "chosen"], rows)]


def report_notes(report: Report, handler_s: float | None, peak_mb: float | None) -> list[str]:
    train, base = report.runs["train"], report.runs["baseline"]
    manifest = train.result.get("manifest", {})
    notes = []
    tl = report.train_limits
    if handler_s is not None:
        verdict = "within" if train.ok and handler_s <= tl.timeout_s else "beyond"
        notes.append(f"- The train handler ran {handler_s:.0f} s: {verdict} TrainFunction's {tl.timeout_s} s Timeout "
                     f"(Lambda's maximum is {LAMBDA_MAX_TIMEOUT_S} s).")
    budget = manifest.get("search_budget_seconds")
    board = manifest.get("leaderboard") or []
    if board and budget:
        search_elapsed = max(e.get("elapsed_seconds", 0) for e in board)
        if search_elapsed > budget:
            notes.append(f"- The search's {budget:.0f} s budget is checked only between fits, and the first round "
                         f"(every family's default setting) always runs in full: the search's cross-validation took "
                         f"{search_elapsed:.0f} s.")
    if base.ok and manifest.get("holdout_score") is not None and handler_s:
        notes.append(f"- The baseline's single fit took {base.result['fit_s']:.0f} s for a holdout score of "
                     f"{base.result['holdout_score']:.4f}; Loopline's search took {handler_s:.0f} s for "
                     f"{manifest['holdout_score']:.4f}.")
    if peak_mb is not None:
        notes.append(f"- Peak memory {peak_mb:,.0f} MB is {peak_mb / tl.memory_mb:.0%} of TrainFunction's "
                     f"{tl.memory_mb:,} MB. Lambda allots CPU in proportion to memory (1 vCPU per 1,769 MB), so "
                     f"{tl.memory_mb:,} MB is about {tl.memory_mb / 1769:.1f} vCPU; this machine has "
                     f"{report.facts['nproc']}, and the estimators run single-threaded except "
                     f"HistGradientBoosting (OpenMP).")
    return notes
