"""Unzipped deployment size of each Lambda function in a `sam build` output, against Lambda's hard limit.

Lambda counts a function's own code plus every layer it uses: together at most 250 MB unzipped
(262,144,000 bytes = 250 MiB). The DependenciesLayer alone is most of that (DESIGN.md, Budgets), so
`make size` reports the margin per function and fails when any function is over the limit or over its own
budget (FUNCTION_BUDGET, 150 MiB; the predict function 100 MiB).

The built template (`.aws-sam/build/template.yaml`) names each function's CodeUri and each layer's ContentUri
as folders beside it. `sam build` does not merge Globals into it, so a function's layers are resolved here as
SAM does: `Globals.Function.Layers` first, then the function's own (SAM appends lists from Globals).

    python -m loopline.size_report [--build-dir .aws-sam/build] [--limit BYTES] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loopline.emulator.template_loading import load_template

LAMBDA_UNZIPPED_LIMIT = 262_144_000  # bytes: "250 MB" in the Lambda quotas is 250 MiB
MIB = 1024 * 1024
# Our own budget per function, well under Lambda's limit so that a new dependency or a library release that grows
# by a few MB never breaks a deployment: 150 MiB (100 MiB of room), and the predict function stays as slim as its
# job (its size is its cold start). `make size` fails when a function is over its budget.
FUNCTION_BUDGET = 150 * MIB
FUNCTION_BUDGETS = {"PredictFunction": 100 * MIB}
FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
LAYER_TYPES = {"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"}


@dataclass(frozen=True)
class LayerSize:
    name: str  # logical id, or the ARN of a layer this build does not contain
    bytes: int | None  # None: not in this build (an ARN), size unknown


@dataclass(frozen=True)
class FunctionSize:
    name: str
    code_bytes: int
    layers: tuple[LayerSize, ...] = field(default_factory=tuple)
    limit: int = LAMBDA_UNZIPPED_LIMIT
    budget: int = FUNCTION_BUDGET

    @property
    def total_bytes(self) -> int:
        return self.code_bytes + sum(layer.bytes or 0 for layer in self.layers)

    @property
    def margin_bytes(self) -> int:
        return self.limit - self.total_bytes

    @property
    def over_limit(self) -> bool:
        return self.margin_bytes < 0

    @property
    def over_budget(self) -> bool:
        return self.total_bytes > self.budget

    @property
    def unknown_layers(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers if layer.bytes is None)


def tree_size(path: Path) -> int:
    """Bytes of all files under `path`, as they would be zipped: a symlink counts as the file it points to."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root, name)
            if file.is_file():  # follows symlinks; skips dangling ones, which a zip cannot hold either
                total += file.stat().st_size
    return total


def _layer_id(entry: Any) -> str:
    """A Layers entry: {"Ref": "LogicalId"} for a layer in this template, else an ARN (string or intrinsic)."""
    if isinstance(entry, dict) and set(entry) == {"Ref"}:
        return str(entry["Ref"])
    return entry if isinstance(entry, str) else json.dumps(entry)


def function_sizes(build_dir: Path, limit: int = LAMBDA_UNZIPPED_LIMIT,
                   budgets: dict[str, int] | None = None) -> list[FunctionSize]:
    """Sizes of every zip function in `build_dir` (a `sam build` output with its template.yaml); each function's
    budget is its entry in `budgets` (default FUNCTION_BUDGETS), else FUNCTION_BUDGET."""
    budgets = FUNCTION_BUDGETS if budgets is None else budgets
    template = load_template(build_dir / "template.yaml")
    resources: dict[str, Any] = template.get("Resources") or {}
    global_layers = list(((template.get("Globals") or {}).get("Function") or {}).get("Layers") or [])

    layer_bytes: dict[str, int] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") in LAYER_TYPES:
            props = resource.get("Properties") or {}
            uri = props.get("ContentUri") or props.get("Content")
            if isinstance(uri, str):
                layer_bytes[logical_id] = tree_size(build_dir / uri)

    sizes = []
    for logical_id, resource in resources.items():
        if resource.get("Type") not in FUNCTION_TYPES:
            continue
        props = resource.get("Properties") or {}
        if props.get("PackageType") == "Image":
            continue  # image functions have a 10 GB limit of their own
        code_uri = props.get("CodeUri") or props.get("Code")
        code_bytes = tree_size(build_dir / code_uri) if isinstance(code_uri, str) else 0
        for name, own_layers in _layer_variants(logical_id, props.get("Layers")):
            layers = [LayerSize(layer, layer_bytes.get(layer)) for layer in map(_layer_id, global_layers + own_layers)]
            budget = budgets.get(name, budgets.get(logical_id, FUNCTION_BUDGET))
            sizes.append(FunctionSize(name, code_bytes, tuple(layers), limit, budget))
    return sizes


def _layer_variants(logical_id: str, layers: Any) -> list[tuple[str, list[Any]]]:
    """A function's own layers; `Fn::If` (PredictFunction's ServeScikitLearn) gives one row per branch, the
    condition's branch named `<Function> [<Condition>]`."""
    if isinstance(layers, dict) and set(layers) == {"Fn::If"}:
        condition, when_true, when_false = layers["Fn::If"]
        return [(logical_id, list(when_false or [])), (f"{logical_id} [{condition}]", list(when_true or []))]
    return [(logical_id, list(layers or []))]


def _mib(n: int) -> str:
    return f"{n / MIB:,.1f} MiB"


def format_report(sizes: Iterable[FunctionSize]) -> str:
    lines = []
    for fn in sizes:
        status = "OVER THE LIMIT" if fn.over_limit else "ok"
        lines.append(
            f"{fn.name}: {fn.total_bytes:,} bytes ({_mib(fn.total_bytes)}) of {fn.limit:,} ({_mib(fn.limit)}); "
            f"margin {fn.margin_bytes:,} bytes ({_mib(fn.margin_bytes)}) - {status}"
        )
        over = fn.total_bytes - fn.budget
        lines.append(f"    budget {_mib(fn.budget)}: " + (f"OVER BUDGET by {over:,} bytes ({_mib(over)})" if over > 0
                                                         else f"within it by {-over:,} bytes ({_mib(-over)})"))
        lines.append(f"    code {fn.code_bytes:,} bytes ({_mib(fn.code_bytes)})")
        for layer in fn.layers:
            if layer.bytes is None:
                lines.append(f"    layer {layer.name}: not in this build, size unknown (not counted)")
            else:
                lines.append(f"    layer {layer.name}: {layer.bytes:,} bytes ({_mib(layer.bytes)})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loopline.size_report",
        description="Unzipped size of each Lambda function (its code + its layers) in a sam build output.",
    )
    parser.add_argument("--build-dir", type=Path, default=Path(".aws-sam/build"), help="sam build output")
    parser.add_argument("--limit", type=int, default=LAMBDA_UNZIPPED_LIMIT, help="bytes (default: Lambda's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)

    if not (args.build_dir / "template.yaml").is_file():
        print(f"{args.build_dir}/template.yaml not found: run `make build` (sam build) first", file=sys.stderr)
        return 2
    sizes = function_sizes(args.build_dir, args.limit)
    if not sizes:
        print(f"no zip functions in {args.build_dir}/template.yaml", file=sys.stderr)
        return 2
    if args.json:
        rows = [
            asdict(fn) | {"total_bytes": fn.total_bytes, "margin_bytes": fn.margin_bytes, "over_limit": fn.over_limit,
                          "over_budget": fn.over_budget}
            for fn in sizes
        ]
        print(json.dumps(rows, indent=2))
    else:
        print(format_report(sizes))
    over = [fn.name for fn in sizes if fn.over_limit]
    if over:
        print(f"over Lambda's unzipped size limit: {', '.join(over)}", file=sys.stderr)
    over_budget = [f"{fn.name} ({_mib(fn.total_bytes)} of {_mib(fn.budget)})" for fn in sizes if fn.over_budget]
    if over_budget:
        print(f"over their size budget: {', '.join(over_budget)}", file=sys.stderr)
    return 1 if over or over_budget else 0


if __name__ == "__main__":
    sys.exit(main())
