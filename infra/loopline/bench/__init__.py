"""Benchmarks: the train handler on a 100k-row table, and the predict path's cold and warm latency, each next
to a plain baseline measured in the same run.

    python -m loopline.bench [--rows 100000] [--seed 7] [--warm-requests 200] [--output docs/benchmarks.md]

Every measured case runs in a fresh Python subprocess (`--child CASE`), so imports count as in a Lambda cold
start, and its peak memory is the child's RSS high-water mark (VmHWM; the parent also reads the child's
`ru_maxrss` through wait4). The cases:

- train: the train handler (functions/train/app.py imported as Lambda does: its config and clients, then the
  same `train_challenger` call it makes) on moto S3 (in-process, `moto.mock_aws`), on a dataset
  version written by the runtime's own ingest path, with the repo's pipeline config adapted to the synthetic
  table (window 1, the default candidates and time budget from loopline_runtime.config). The handler's context
  counts down from TrainFunction's Timeout in template.yaml, and the child is killed (SIGALRM) when it runs out,
  as Lambda would. `train_challenger` reports its phases (load, each candidate's cross-validation, refit,
  holdout scoring, registration) to an injected observer (loopline_runtime.progress), which appends them to a
  progress file, so even a killed run says which phase it was in.
- baseline: plain scikit-learn, one HistGradientBoostingClassifier on the same rows and the same seeded split.
- imports: `import sklearn, pandas` alone (the floor of any predict cold start).
- predict: functions/predict/app.py imported fresh, serving the model the train case registered: the imports,
  the first request (champion load + prediction), then warm single-record requests (median of N).
- serving_onnx, serving_sklearn (`serving`): the compiled predict path next to the scikit-learn path it replaced:
  cold start from process start, warm handler median next to the bare model call, 1,000-record requests.

The package: `data` (the synthetic table), `limits` (template facts), `cases` (the children and running one),
`phases` (the progress file), `report` (docs/benchmarks.md), `__main__` (the command). Its modules import only the
standard library at top level: a child's import timings start from a bare interpreter. Other benchmarks live in
their own modules next to it (`loopline.load_bench`).
"""
