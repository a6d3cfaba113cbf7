"""The data scientist's own model code: every way it can be wrong gets one line naming the file, the line where
there is one, and the fix; code that is right is proven (fitted twice, timed, compiled, parity checked)."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopline_runtime.config import ModelCandidate
from loopline_runtime.errors import InvalidModelCode
from loopline_runtime.feature_schema import FeatureSchema, FeatureType, Task
from loopline_runtime.model_code import load_model_code
from loopline_runtime.model_code_check import prove_model_code
from loopline_runtime.schema import coerce_target
from tests.conftest import SAMPLE_FEATURES
from tests.support.model_code import copy_model_code

LINEAR = """
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.impute import SimpleImputer


def build(schema):
    return make_pipeline(SimpleImputer(), LogisticRegression(max_iter=2000, random_state=0))
"""


@pytest.fixture
def schema() -> FeatureSchema:
    return FeatureSchema(target="diagnosis", task=Task.CLASSIFICATION,
                         features={name: FeatureType.NUMERIC for name in SAMPLE_FEATURES})


@pytest.fixture
def rows(breast_cancer: pd.DataFrame, schema: FeatureSchema) -> tuple[pd.DataFrame, pd.Series]:
    return breast_cancer[list(schema.features)], coerce_target(breast_cancer["diagnosis"], schema.task)


@pytest.fixture
def write_model(tmp_path: Path) -> Callable[..., ModelCandidate]:
    """Write model code beside a (notional) config in tmp_path; the candidate that names it."""

    def write(source: str, *, file: str = "model.py", function: str = "build", helpers: dict[str, str] | None = None,
              serving: str = "onnx") -> ModelCandidate:
        (tmp_path / file).write_text(textwrap.dedent(source), encoding="utf-8")
        for name, text in (helpers or {}).items():
            (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
        return ModelCandidate(name="mine", code=f"{file}:{function}", helpers=list(helpers or {}),
                              serving=serving)  # type: ignore[arg-type]

    return write


def _prove(candidate: ModelCandidate, directory: Path, schema: FeatureSchema, rows: tuple[pd.DataFrame, pd.Series],
           **options: Any) -> Any:
    code = load_model_code(candidate, directory)
    return prove_model_code(code, candidate, schema, *rows, seed=42,
                            time_budget_seconds=options.pop("budget", 300), **options)


def test_a_model_file_that_raises_on_import_is_one_line_with_its_line_number(
    write_model: Callable[..., ModelCandidate], tmp_path: Path,
) -> None:
    # given a model file that fails while it is imported (line 3)
    candidate = write_model("import math\n\nlimit = 1 / 0\n")

    # when it is loaded
    with pytest.raises(InvalidModelCode) as raised:
        load_model_code(candidate, tmp_path)

    # then the one-line message names the file, the line and the error
    assert str(raised.value) == "model.py:build: importing model.py raised ZeroDivisionError: division by zero " \
                                "(model.py line 3)"


def test_a_syntax_error_names_the_line(write_model: Callable[..., ModelCandidate], tmp_path: Path) -> None:
    # given a model file that is not valid Python
    candidate = write_model("def build(schema)\n    return None\n")

    # when it is loaded
    with pytest.raises(InvalidModelCode, match=r"SyntaxError: .* \(model\.py line 1\)"):
        load_model_code(candidate, tmp_path)


def test_an_undeclared_import_says_to_declare_it_under_helpers(
    write_model: Callable[..., ModelCandidate], tmp_path: Path,
) -> None:
    # given a model file that imports a file beside it that the config does not declare
    (tmp_path / "features_of_mine.py").write_text("RATIO = 1\n", encoding="utf-8")
    candidate = write_model("import features_of_mine\n\ndef build(schema):\n    return None\n")

    # when it is loaded
    with pytest.raises(InvalidModelCode) as raised:
        load_model_code(candidate, tmp_path)

    # then the message names the module and the two ways to fix it
    assert "imports 'features_of_mine'" in str(raised.value)
    assert "`helpers:`" in str(raised.value)


def test_a_declared_helper_is_imported_from_the_packaged_copy(
    write_model: Callable[..., ModelCandidate], tmp_path: Path, schema: FeatureSchema,
) -> None:
    # given a model file importing a declared pure-Python helper beside it
    candidate = write_model(
        "import my_settings\nfrom sklearn.linear_model import LogisticRegression\n\n"
        "def build(schema):\n    return LogisticRegression(C=my_settings.C, random_state=0)\n",
        helpers={"my_settings.py": "C = 0.5\n"})

    # when it is loaded and built
    code = load_model_code(candidate, tmp_path)
    estimator = code.build(schema)

    # then the helper's value was used, and both files' sha256 are recorded
    assert estimator.C == 0.5
    assert set(code.record()["sha256"]) == {"model.py", "my_settings.py"}


def test_a_missing_function_lists_the_functions_there(
    write_model: Callable[..., ModelCandidate], tmp_path: Path,
) -> None:
    # given a config naming a function the file does not define
    candidate = write_model("def make_model(schema):\n    return None\n", function="build")

    # when it is loaded
    with pytest.raises(InvalidModelCode, match="defines no function 'build' \\(functions there: make_model\\)"):
        load_model_code(candidate, tmp_path)


def test_an_exception_in_build_names_the_file_and_line(
    write_model: Callable[..., ModelCandidate], tmp_path: Path, schema: FeatureSchema,
) -> None:
    # given a build function that raises (line 3)
    candidate = write_model("def build(schema):\n    columns = schema.numeric\n    return columns['ratio']\n")
    code = load_model_code(candidate, tmp_path)

    # when it is built
    with pytest.raises(InvalidModelCode) as raised:
        code.build(schema)

    # then one line says where and what
    assert str(raised.value) == "model.py:build raised TypeError: list indices must be integers or slices, not str " \
                                "(model.py line 3)"


@pytest.mark.parametrize(("returned", "expected"), [
    ("(LogisticRegression(), 'extra')", "returned tuple, not a scikit-learn estimator"),
    ("LogisticRegression", "returned the class LogisticRegression, not an estimator"),
    ("Ridge()", "Ridge, which is not a classifier, for a classification target"),
])
def test_a_build_that_returns_no_estimator_for_the_task_is_refused(
    write_model: Callable[..., ModelCandidate], tmp_path: Path, schema: FeatureSchema, returned: str, expected: str,
) -> None:
    # given a build function returning something else than an unfitted classifier
    candidate = write_model(f"from sklearn.linear_model import LogisticRegression, Ridge\n\n"
                            f"def build(schema):\n    return {returned}\n")

    # when it is built
    with pytest.raises(InvalidModelCode, match=expected):
        load_model_code(candidate, tmp_path).build(schema)


def test_an_exception_while_fitting_is_one_line(
    write_model: Callable[..., ModelCandidate], tmp_path: Path, schema: FeatureSchema,
    rows: tuple[pd.DataFrame, pd.Series],
) -> None:
    # given an estimator that selects a column the data does not have
    candidate = write_model("""
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline

        def build(schema):
            return Pipeline([("columns", ColumnTransformer([("x", "passthrough", ["no such column"])])),
                             ("model", LogisticRegression(random_state=0))])
    """)

    # when it is proven
    with pytest.raises(InvalidModelCode) as raised:
        _prove(candidate, tmp_path, schema, rows)

    # then one line says the fit failed and why
    message = str(raised.value)
    assert message.startswith("model.py:build: fitting the returned estimator raised ValueError:")
    assert "\n" not in message


@pytest.mark.parametrize(("random_state", "refused"), [("None", True), ("0", False)])
def test_a_fit_that_is_not_deterministic_is_refused(
    write_model: Callable[..., ModelCandidate], tmp_path: Path, schema: FeatureSchema,
    rows: tuple[pd.DataFrame, pd.Series], random_state: str, refused: bool,
) -> None:
    # given a random forest without (and, as the control, with) a seed
    candidate = write_model(f"""
        from sklearn.ensemble import RandomForestClassifier

        def build(schema):
            return RandomForestClassifier(n_estimators=5, max_depth=3, random_state={random_state})
    """, serving="scikit-learn")

    # when it is proven
    if refused:
        with pytest.raises(InvalidModelCode, match=r"two fits on the same rows predict differently.*random_state"):
            _prove(candidate, tmp_path, schema, rows)
    else:
        # then the seeded one passes
        assert _prove(candidate, tmp_path, schema, rows).rows > 0


@pytest.mark.parametrize(("seconds_per_reading", "refused"), [(100.0, True), (0.001, False)])
def test_a_model_too_slow_for_the_search_budget_is_refused(
    write_model: Callable[..., ModelCandidate], tmp_path: Path, schema: FeatureSchema,
    rows: tuple[pd.DataFrame, pd.Series], seconds_per_reading: float, refused: bool,
) -> None:
    # given a clock on which one fit takes `seconds_per_reading`, and a 60 s budget
    ticks = itertools.count()
    candidate = write_model(LINEAR)

    def clock() -> float:
        return next(ticks) * seconds_per_reading

    # when it is proven
    if refused:
        with pytest.raises(InvalidModelCode, match=r"one fit took 100\.00 s on \d+ rows.*time_budget_seconds \(60 s\)"):
            _prove(candidate, tmp_path, schema, rows, budget=60, clock=clock)
    else:
        assert _prove(candidate, tmp_path, schema, rows, budget=60, clock=clock).estimated_fit_seconds < 60


def test_an_unconvertible_step_names_the_step_and_the_three_fixes(
    tmp_path: Path, schema: FeatureSchema, rows: tuple[pd.DataFrame, pd.Series],
) -> None:
    # given model code with a transformer skl2onnx has no converter for, to be served as ONNX
    copy_model_code("clipped_model.py", tmp_path)
    candidate = ModelCandidate(name="mine", code="clipped_model.py:build")

    # when it is proven
    with pytest.raises(InvalidModelCode) as raised:
        _prove(candidate, tmp_path, schema, rows)

    # then the message the user sees names the step by its set_params path and what to do
    assert str(raised.value) == (
        "clipped_model.py:build: step 'model__clip' (Clipped) cannot be compiled to ONNX: skl2onnx has no converter "
        "for Clipped. Register one next to the class (skl2onnx.update_registered_converter(Clipped, ..., "
        "shape_calculator, converter); see README \"Bring your own model\"), replace the step with a convertible "
        "equivalent, or choose the scikit-learn serving form for this candidate (`serving: scikit-learn`)")


def test_an_unconvertible_step_is_accepted_when_the_config_chooses_scikit_learn_serving(
    tmp_path: Path, schema: FeatureSchema, rows: tuple[pd.DataFrame, pd.Series],
) -> None:
    # given the same code with `serving: scikit-learn`
    copy_model_code("clipped_model.py", tmp_path)
    candidate = ModelCandidate(name="mine", code="clipped_model.py:build", serving="scikit-learn")

    # when it is proven
    proof = _prove(candidate, tmp_path, schema, rows)

    # then it passes, and the record still says why it did not compile
    assert "Clipped" in proof.compiled["error"]
    assert "served with scikit-learn" in proof.summary()


def test_a_custom_transformer_with_its_converter_compiles_with_parity(
    tmp_path: Path, schema: FeatureSchema, rows: tuple[pd.DataFrame, pd.Series],
) -> None:
    # given the README's ratio example (a custom transformer and its skl2onnx converter)
    copy_model_code("ratio_model.py", tmp_path, "model.py")
    candidate = ModelCandidate(name="mine", code="model.py:build")

    # when it is proven
    proof = _prove(candidate, tmp_path, schema, rows)

    # then its compiled form agrees with scikit-learn
    assert proof.compiled["parity"]["passed"] is True
    assert "compiled to ONNX, parity on" in proof.summary()


def test_params_that_do_not_fit_the_returned_estimator_are_named(
    write_model: Callable[..., ModelCandidate], tmp_path: Path, schema: FeatureSchema,
) -> None:
    # given a grid naming a parameter the returned Pipeline does not have
    candidate = write_model(LINEAR)
    code = load_model_code(candidate, tmp_path)

    # when a setting is built
    expected = r"names 'classifier__C', which is not a parameter of what it returns \(Pipeline\); use set_params " \
               r"names, e.g. 'logisticregression__C'"
    with pytest.raises(InvalidModelCode, match=expected):
        code.build(schema, {"classifier__C": 1.0})
