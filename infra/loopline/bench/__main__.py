"""`python -m loopline.bench`: generate the table, run every case, write the report."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from loopline.bench import __doc__ as bench_doc
from loopline.bench.capture import CASES as CAPTURE_CASES
from loopline.bench.capture import render_section as render_capture_section
from loopline.bench.cases import CASES, CHILDREN, REPO_ROOT, CaseRun, run_case
from loopline.bench.chunk_scoring import CASES as CHUNK_CASES
from loopline.bench.chunk_scoring import chunk_section
from loopline.bench.data import DATE_COLUMN, TARGET, adapted_config, generate_dataset
from loopline.bench.limits import function_limits
from loopline.bench.monitoring import CASES as MONITOR_CASES
from loopline.bench.monitoring import monitor_section
from loopline.bench.phases import phases_from_events, read_events
from loopline.bench.report import Report, handler_seconds, machine_facts, render
from loopline.bench.serving import CASES as SERVING_CASES
from loopline.bench.serving import render_sklearn_form_rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loopline.bench", description=(bench_doc or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the synthetic table (default 100000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic table (default 7)")
    parser.add_argument("--warm-requests", type=int, default=200, help="warm predict requests timed (default 200)")
    parser.add_argument("--config", default=os.environ.get("PIPELINE_CONFIG", "pipeline.yaml"),
                        help="the pipeline config to adapt (default $PIPELINE_CONFIG or pipeline.yaml)")
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--output", default="docs/benchmarks.md", help="where to write the report ('-': nowhere)")
    parser.add_argument("--with-full-search", action="store_true",
                        help="also run the train handler with the search on every training row (as before "
                             "SEARCH_MAX_ROWS), side by side")
    parser.add_argument("--skip-batch", action="store_true",
                        help="do not score the file through the batch scoring state machine on the emulator")
    parser.add_argument("--workdir", help="keep the cases' data, logs and results here (default: a temp dir)")
    parser.add_argument("--only", type=lambda text: [c.strip() for c in text.split(",") if c.strip()],
                        help="run only these cases (comma-separated, e.g. train,baseline,chunk_cold; `capture` "
                             "for the capture rows, which also writes docs/benchmarks-capture.md): their results "
                             "are printed, docs/benchmarks.md is not written")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        workdir = Path(args.workdir)
        result = CHILDREN[args.child](workdir)
        (workdir / f"{args.child}.json").write_text(json.dumps(result, default=str, indent=2))
        return 0

    with contextlib.ExitStack() as stack:
        workdir = Path(args.workdir) if args.workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="loopline-bench-")))
        workdir.mkdir(parents=True, exist_ok=True)
        return _run(args, workdir)


def _run(args: argparse.Namespace, workdir: Path) -> int:
    import yaml

    from loopline.emulator.template_loading import load_template
    from loopline_runtime.config import load_config

    template = load_template(REPO_ROOT / args.template)
    train_limits = function_limits(template, "TrainFunction")
    predict_limits = function_limits(template, "PredictFunction")
    ingest_limits = function_limits(template, "IngestFunction")
    monitor_limits = function_limits(template, "MonitorFunction")
    config = adapted_config(load_config(REPO_ROOT / args.config))
    (workdir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    (workdir / "config.json").write_text(json.dumps(config.model_dump(mode="json")))  # bundled as a build does
    print(f"generating {args.rows:,} synthetic rows (seed {args.seed}) in {workdir}", flush=True)
    frame = generate_dataset(args.rows, args.seed)
    frame.to_csv(workdir / "data.csv", index=False)
    sample = frame.drop(columns=[TARGET]).head(max(1, min(args.warm_requests, 500)))
    sample[DATE_COLUMN] = sample[DATE_COLUMN].dt.strftime("%Y-%m-%d")
    records = json.loads(sample.to_json(orient="records"))  # NaN -> null, as a client sends it
    (workdir / "records.json").write_text(json.dumps(records))
    (workdir / "plan.json").write_text(json.dumps({
        "train_limits": train_limits.__dict__, "predict_limits": predict_limits.__dict__,
        "ingest_limits": ingest_limits.__dict__, "monitor_limits": monitor_limits.__dict__,
        "seed": config.training.seed, "holdout_fraction": config.training.holdout_fraction,
        "warm_requests": args.warm_requests}))
    (workdir / "train_progress.jsonl").unlink(missing_ok=True)
    (workdir / "train_full_search_progress.jsonl").unlink(missing_ok=True)
    if not args.only or "train" in args.only:  # `--only` without train reuses the workdir's registered model
        for stale in ("model.joblib", "model.onnx", "manifest.json"):
            (workdir / stale).unlink(missing_ok=True)
    columns = len(frame.columns)
    del frame, sample

    runs: dict[str, CaseRun] = {}
    # the handler is killed at its Timeout (SIGALRM in the child); the parent's limit only guards a hung setup
    order = ("ingest", "ingest_baseline", "train", "baseline", "imports", "predict", *SERVING_CASES, *CAPTURE_CASES,
             *(["train_full_search"] if args.with_full_search else []),
             *(["train_job"] if args.only and "train_job" in args.only else []), *CHUNK_CASES, *MONITOR_CASES,
             *([] if args.skip_batch else ["batch", "batch_baseline"]))
    if args.only and "capture" in args.only:  # the capture rows by one name
        args.only = [*(c for c in args.only if c != "capture"), *CAPTURE_CASES]
    if args.only and "train" not in args.only and not (workdir / "model.onnx").is_file():
        args.only = ["train", *args.only]  # the other cases score the model it registers
    unknown = sorted(set(args.only or ()) - set(CASES))
    if unknown:
        print(f"unknown case(s) {', '.join(unknown)}; the cases are: {', '.join(CASES)}", file=sys.stderr)
        return 2
    for case in [c for c in order if c in args.only] if args.only else order:
        needs_model = case in ("predict", *SERVING_CASES, *CHUNK_CASES, *MONITOR_CASES, "batch", "batch_baseline",
                               "capture_overhead", "shadow_overhead")
        if needs_model and not (workdir / "model.onnx").is_file():
            print(f"{case}: skipped (the train case registered no compiled model)", flush=True)
            continue
        print(f"{case}: running ...", flush=True)
        # the functions' own cases run under the emulator's memory enforcement, at the template's MemorySize
        memory = {"ingest": ingest_limits.memory_mb, "train": train_limits.memory_mb}.get(case)
        run = run_case(case, workdir, memory_mb=memory,
                       kill_after_s=train_limits.timeout_s + 600 if case.startswith("train") else 3600)
        runs[case] = run
        state = "ok" if run.ok else f"FAILED (exit {run.exit_code}; log {run.log})"
        if run.out_of_memory:
            state = f"Runtime.OutOfMemory: past its MemorySize of {memory} MB (log {run.log})"
        elif memory is not None:
            state += f", within its MemorySize of {memory} MB (enforced as on the emulator)"
        print(f"{case}: {state} in {run.wall_s:.1f} s, peak RSS {run.peak_kib / 1024:,.0f} MB", flush=True)
        if not run.ok:
            print(run.log.read_text()[-3000:], file=sys.stderr)

    if args.only:
        return _print_only(runs, args.rows)
    events = read_events(workdir / "train_progress.jsonl")
    invoke = next((e["t"] for e in events if e["event"] == "invoke"), 0.0)
    relative = [{**e, "t": e["t"] - invoke} for e in events if e["event"] not in ("invoke", "return")]
    end = handler_seconds(runs["train"], relative, train_limits)
    phases = phases_from_events(relative, end=end)
    training = config.training
    report = Report(
        command="make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else ""),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        facts=machine_facts(), rows=args.rows, columns=columns, seed=args.seed,
        train_limits=train_limits, predict_limits=predict_limits,
        config_summary=(f"{args.config} adapted: target `{TARGET}`, features inferred at ingest, window "
                        f"{training.window}, holdout {training.holdout_fraction}, seed {training.seed}, metric "
                        f"{config.metric}, default candidates, default time budget "
                        f"{training.time_budget_seconds} s"),
        runs=runs, phases=phases, events=relative, handler_s=end, ingest_limits=ingest_limits)
    text = render(report).rstrip("\n") + "\n\n" + "\n".join(render_capture_section(runs))
    print()
    print(text)
    if args.output != "-":
        output = REPO_ROOT / args.output
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        print(f"\nwrote {output}")
    return 0 if all(run.ok for run in runs.values()) else 1


def _print_only(runs: dict[str, CaseRun], rows: int) -> int:
    """`--only`: each case's result and the load average around it, and the chunk scorer's section."""
    for case, run in runs.items():
        print(f"\n{case}: exit {run.exit_code}, wall {run.wall_s:.1f} s, load average {run.load_before:.2f} -> "
              f"{run.load_after:.2f}")
        print(json.dumps(run.result, indent=2, default=str)[:4000])
    print("\n".join(chunk_section(runs)))
    print("\n".join(monitor_section(runs)))
    if "serving_sklearn_form" in runs:
        print("\n".join(render_sklearn_form_rows(runs)))
    if any(case in runs for case in CAPTURE_CASES):
        text = "\n".join(capture_section(runs, machine_facts(), rows))
        print(text)
        (REPO_ROOT / "docs" / "benchmarks-capture.md").write_text(text + "\n")
    return 0 if all(run.ok for run in runs.values()) else 1


def capture_section(runs: dict[str, CaseRun], facts: dict[str, str], rows: int) -> list[str]:
    """docs/benchmarks-capture.md: the capture rows alone (`--only capture`)."""
    machine = ", ".join(f"{k} {v}" for k, v in facts.items())
    return ["# Prediction capture benchmark", "",
            f"`python -m loopline.bench --only capture --rows {rows}` (the first half of `make bench BENCH_ARGS="
            f"'--only capture --rows {rows}'`), {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; "
            f"machine: {machine}. The machine was shared with other work (see the load averages).", "",
            *render_capture_section(runs)]


if __name__ == "__main__":
    sys.exit(main())
