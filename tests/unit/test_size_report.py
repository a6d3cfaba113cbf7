"""loopline.size_report on small fake `sam build` outputs (no SAM, no AWS)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopline.size_report import (
    FUNCTION_BUDGET,
    FUNCTION_BUDGETS,
    LAMBDA_UNZIPPED_LIMIT,
    MIB,
    function_sizes,
    main,
    tree_size,
)


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


# The shape `sam build` writes: Globals kept (not merged), CodeUri/ContentUri as folder names, intrinsics in
# long form. The source template.yaml uses short-form tags, which must read the same.
BUILT_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    Layers:
    - Ref: RuntimeLayer
    - Ref: DependenciesLayer
Resources:
  RuntimeLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: RuntimeLayer}
  DependenciesLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: DependenciesLayer}
  ExtraLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: ExtraLayer}
  IngestFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: IngestFunction, Handler: app.lambda_handler}
  PredictFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: PredictFunction
      Handler: app.lambda_handler
      Layers: [!Ref ExtraLayer, "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3:1"]
  Bucket:
    Type: AWS::S3::Bucket
    Properties: {BucketName: !Sub "${AWS::StackName}-artifacts"}
"""


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(BUILT_TEMPLATE)
    write(tmp_path / "IngestFunction" / "app.py", 100)
    write(tmp_path / "PredictFunction" / "app.py", 200)
    write(tmp_path / "PredictFunction" / "pkg" / "model.py", 50)
    write(tmp_path / "RuntimeLayer" / "python" / "loopline_runtime" / "__init__.py", 1_000)
    write(tmp_path / "DependenciesLayer" / "python" / "sklearn" / "_core.so", 20_000)
    write(tmp_path / "DependenciesLayer" / "python" / "numpy" / "__init__.py", 3_000)
    write(tmp_path / "ExtraLayer" / "python" / "extra.py", 7)
    return tmp_path


def test_tree_size_counts_file_bytes_recursively_and_follows_symlinks(tmp_path: Path) -> None:
    write(tmp_path / "a" / "b" / "c.bin", 10)
    write(tmp_path / "a" / "d.bin", 5)
    (tmp_path / "a" / "link.bin").symlink_to(tmp_path / "a" / "d.bin")  # a zip stores the target's bytes
    (tmp_path / "a" / "dangling").symlink_to(tmp_path / "missing")
    assert tree_size(tmp_path / "a") == 20
    assert tree_size(tmp_path / "a" / "d.bin") == 5
    assert tree_size(tmp_path / "empty-or-missing") == 0


def test_each_function_counts_its_code_and_the_global_layers(build_dir: Path) -> None:
    sizes = {fn.name: fn for fn in function_sizes(build_dir)}

    assert set(sizes) == {"IngestFunction", "PredictFunction"}  # the bucket and the layers are not functions
    ingest = sizes["IngestFunction"]
    assert ingest.code_bytes == 100
    assert [(layer.name, layer.bytes) for layer in ingest.layers] == [
        ("RuntimeLayer", 1_000),
        ("DependenciesLayer", 23_000),
    ]
    assert ingest.total_bytes == 24_100
    assert ingest.margin_bytes == LAMBDA_UNZIPPED_LIMIT - 24_100
    assert not ingest.over_limit


def test_function_layers_are_appended_to_the_global_ones_and_arns_are_flagged(build_dir: Path) -> None:
    predict = {fn.name: fn for fn in function_sizes(build_dir)}["PredictFunction"]

    assert [layer.name for layer in predict.layers] == [
        "RuntimeLayer",
        "DependenciesLayer",
        "ExtraLayer",
        "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3:1",
    ]
    assert predict.total_bytes == 250 + 1_000 + 23_000 + 7  # the ARN layer's size is unknown, not guessed
    assert predict.unknown_layers == ("arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3:1",)


def test_layers_chosen_by_a_condition_get_one_row_per_branch(build_dir: Path) -> None:
    # given a function whose layers depend on a condition (PredictFunction's ServeScikitLearn)
    template = (build_dir / "template.yaml").read_text()
    (build_dir / "template.yaml").write_text(template.replace(
        '      Layers: [!Ref ExtraLayer, "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3:1"]',
        "      Layers: !If [ServeScikitLearn, [!Ref ExtraLayer, !Ref DependenciesLayer], [!Ref ExtraLayer]]"))

    # when sizes are read
    sizes = {fn.name: fn for fn in function_sizes(build_dir)}

    # then both variants are sized: the default branch under the function's name, the other named by its condition
    assert sizes["PredictFunction"].total_bytes == 250 + 1_000 + 23_000 + 7
    assert sizes["PredictFunction [ServeScikitLearn]"].total_bytes == 250 + 1_000 + 23_000 + 7 + 23_000


def test_over_the_limit_is_reported_per_function(build_dir: Path) -> None:
    sizes = {fn.name: fn for fn in function_sizes(build_dir, limit=24_200)}

    assert not sizes["IngestFunction"].over_limit  # 24,100: margin 100
    assert sizes["IngestFunction"].margin_bytes == 100
    assert sizes["PredictFunction"].over_limit  # 24,257
    assert sizes["PredictFunction"].margin_bytes == -57


def test_cli_prints_sizes_and_margins_and_exits_0_under_the_limit(
    build_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--build-dir", str(build_dir)]) == 0

    out = capsys.readouterr().out
    assert "IngestFunction: 24,100 bytes" in out
    assert f"margin {LAMBDA_UNZIPPED_LIMIT - 24_100:,} bytes" in out
    assert "layer DependenciesLayer: 23,000 bytes" in out
    assert "size unknown" in out  # the ARN layer


def test_cli_exits_1_naming_the_functions_over_the_limit(build_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--build-dir", str(build_dir), "--limit", "24200"]) == 1

    captured = capsys.readouterr()
    assert "PredictFunction" in captured.out and "OVER THE LIMIT" in captured.out
    assert "over Lambda's unzipped size limit: PredictFunction" in captured.err


def test_cli_json_output(build_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--build-dir", str(build_dir), "--json"]) == 0

    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["IngestFunction"]["total_bytes"] == 24_100
    assert rows["IngestFunction"]["over_limit"] is False
    assert rows["PredictFunction"]["layers"][2] == {"name": "ExtraLayer", "bytes": 7}


def test_cli_without_a_build_says_to_build_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--build-dir", str(tmp_path / "nope")]) == 2
    assert "run `make build`" in capsys.readouterr().err


def test_every_function_has_a_budget_of_150_mib_and_the_predict_function_100_mib() -> None:
    # the budgets the issue set: 100 MiB of room under Lambda's 250 MiB; predict as slim as its cold start wants
    assert FUNCTION_BUDGET == 150 * MIB
    assert FUNCTION_BUDGETS == {"PredictFunction": 100 * MIB}


def test_a_function_a_byte_over_its_budget_is_over_it(build_dir: Path) -> None:
    # given budgets the fake functions reach exactly (ingest) and pass by one byte (predict: 24,257 bytes)
    budgets = {"IngestFunction": 24_100, "PredictFunction": 24_256}

    # when
    sizes = {fn.name: fn for fn in function_sizes(build_dir, budgets=budgets)}

    # then exactly at its budget is within it, one byte more is over
    assert not sizes["IngestFunction"].over_budget
    assert sizes["PredictFunction"].over_budget


def test_the_cli_exits_1_naming_a_function_over_its_budget(build_dir: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # given a predict budget below the fake predict function's 24,257 bytes
    monkeypatch.setitem(FUNCTION_BUDGETS, "PredictFunction", 24_000)

    # when
    status = main(["--build-dir", str(build_dir)])

    # then the command fails, and says which function and by how much
    captured = capsys.readouterr()
    assert status == 1
    assert "over their size budget: PredictFunction" in captured.err
    assert "OVER BUDGET by 257 bytes" in captured.out
    assert "IngestFunction" not in captured.err
