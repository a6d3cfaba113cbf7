"""`loopline validate` for candidates with their own code: import, build, fit on a sample of the user's CSV,
compile and check parity, before anything is deployed (the same checks training runs before its search)."""

from __future__ import annotations

from pathlib import Path

from loopline_runtime.config import PipelineConfig
from loopline_runtime.feature_schema import FeatureSchema, Task
from loopline_runtime.model_code import load_candidates_code
from loopline_runtime.model_code_check import prove_model_code
from loopline_runtime.schema import coerce_target, infer_schema, read_csv


def validate_model_code(config: PipelineConfig, config_dir: Path, data: Path | None) -> list[str]:
    """One line per candidate with code saying what was proven; raises InvalidModelCode (or the CSV's own
    error) with the first problem."""
    code = load_candidates_code(config.models, config_dir)
    candidates = {candidate.name: candidate for candidate in config.models or []}
    if data is None:
        if config.features is None or config.task is None:
            return [f"{name}: {loaded.reference} imports; pass --data DATA.csv to build, fit, compile and check it"
                    for name, loaded in code.items()]
        schema = FeatureSchema(target=config.target, task=Task(config.task), features=dict(config.features))
        lines = []
        for name, loaded in code.items():
            loaded.build(schema)
            lines.append(f"{name}: {loaded.reference} imports and builds; pass --data DATA.csv to fit, compile and "
                         "check parity")
        return lines
    frame = read_csv(data.read_bytes(), source=str(data), delimiter=config.csv.delimiter)
    schema = infer_schema(frame, config)
    labeled = frame[frame[schema.target].notna()]
    X = labeled.reindex(columns=list(schema.features))
    y = coerce_target(labeled[schema.target].astype(object), schema.task)
    return [prove_model_code(loaded, candidates[name], schema, X, y, seed=config.training.seed,
                             time_budget_seconds=config.training.time_budget_seconds).summary()
            for name, loaded in code.items()]
