"""The data scientist's own model code: a function in a Python file beside the pipeline config that receives the
model-input schema and returns an unfitted scikit-learn estimator or Pipeline (`models: - name: mine,
code: model.py:build`).

The file is loaded by path from the copy packaged in the runtime layer with the config (`config.model_code_dir`),
never from S3. Its classes live in a module of a fixed name (`loopline_user_code.<file stem>`), so a pickled
pipeline that holds them refers to the same names wherever it is loaded. Every way the code can fail is turned
into one InvalidModelCode line naming the file, the line and the fix: at `loopline validate` and at training.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline_runtime.config import ModelCandidate
from loopline_runtime.errors import ArtifactIntegrityError, InvalidModelCode
from loopline_runtime.feature_schema import FeatureSchema, Task, model_input_columns

USER_CODE_PACKAGE = "loopline_user_code"
_USER_FILES: set[str] = set()  # paths of the user's loaded files: where an error's line is looked up


@dataclass(frozen=True)
class ModelInputSchema:
    """What the user's function receives: the columns its estimator is fitted on and served with.

    The frame the returned estimator sees has one column per model input: `numeric` columns (numbers, booleans
    as 0/1 and date parts such as `signup__month`) as floats with gaps as NaN, `categorical` columns as strings
    with gaps and rare levels grouped. `features` is the config's declared (or inferred) type per feature.
    """

    task: str
    features: dict[str, str]
    numeric: list[str]
    categorical: list[str]

    @classmethod
    def of(cls, schema: FeatureSchema) -> ModelInputSchema:
        numeric, categorical = model_input_columns(schema.features)
        return cls(schema.task.value, {name: kind.value for name, kind in schema.features.items()},
                   list(numeric), list(categorical))


ModelBuilder = Callable[[ModelInputSchema], Any]


@dataclass(frozen=True)
class ModelCode:
    """One candidate's code, loaded: its builder and the sha256 of every file it was loaded from."""

    candidate: str
    reference: str  # model.py:build
    builder: ModelBuilder
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256

    def record(self) -> dict[str, Any]:
        """What the model's manifest records about the code it was trained from."""
        return {"candidate": self.candidate, "code": self.reference, "sha256": dict(self.files)}

    def build(self, schema: FeatureSchema, params: dict[str, Any] | None = None) -> Any:
        """A fresh unfitted estimator from the user's function, checked, with `params` set."""
        estimator = _call(self.reference, lambda: self.builder(ModelInputSchema.of(schema)))
        check_estimator_shape(estimator, schema.task, self.reference)
        if params:
            known = estimator.get_params()
            unknown = [name for name in params if name not in known]
            if unknown:
                leaf = unknown[0].rsplit("__", 1)[-1]
                alike = [name for name in known if name.rsplit("__", 1)[-1] == leaf][:3]
                raise InvalidModelCode(
                    f"{self.reference}: models.params names {unknown[0]!r}, which is not a parameter of what it "
                    f"returns ({type(estimator).__name__}); use set_params names"
                    + (f", e.g. {', '.join(map(repr, alike))}" if alike else ", e.g. `model__C` for step `model`"))
            estimator.set_params(**params)
        return estimator


def load_model_code(candidate: ModelCandidate, code_dir: Path) -> ModelCode:
    """Import the candidate's helpers and file by path (helpers first, under their own names, so the file's
    `import helper` finds exactly the declared copy) and return its function. Raises InvalidModelCode."""
    assert candidate.code_file is not None and candidate.code_function is not None
    files: dict[str, str] = {}
    for helper in candidate.helpers:
        module = _import_file(Path(code_dir) / helper, Path(helper).stem, candidate.code or "")
        files[helper] = _sha256(Path(str(module.__file__)))
    module_name = f"{USER_CODE_PACKAGE}.{Path(candidate.code_file).stem}"
    module = _import_file(Path(code_dir) / candidate.code_file, module_name, candidate.code or "")
    files[candidate.code_file] = _sha256(Path(str(module.__file__)))
    builder = getattr(module, candidate.code_function, None)
    if not callable(builder):
        defined = sorted(name for name, value in vars(module).items()
                         if callable(value) and getattr(value, "__module__", None) == module_name
                         and not isinstance(value, type))
        raise InvalidModelCode(f"{candidate.code}: {candidate.code_file} defines no function "
                               f"{candidate.code_function!r} (functions there: {', '.join(defined) or 'none'}); "
                               "fix `code:` in the config or the function's name")
    return ModelCode(candidate.name, candidate.code or "", builder, files)


def load_candidates_code(candidates: list[ModelCandidate] | None, code_dir: Path) -> dict[str, ModelCode]:
    """The loaded code of every candidate that has some, by candidate name."""
    return {c.name: load_model_code(c, code_dir) for c in candidates or [] if c.code}


def load_recorded_code(version: str, record: dict[str, Any] | None) -> None:
    """Before a pickled pipeline of the user's code is loaded: its code from the copy packaged with the config,
    only if every file is byte for byte what the model was trained with (the manifest's sha256).

    Raises:
        ArtifactIntegrityError: a file differs or is missing (deploy what it was trained with, or retrain).
    """
    if not record:
        return
    from loopline_runtime.config import model_code_dir

    directory = model_code_dir()
    for name, expected in record["sha256"].items():
        path = directory / name
        found = _sha256(path) if path.is_file() else "missing"
        if found != expected:
            raise ArtifactIntegrityError(
                f"model {version} was trained with {name} sha256 {expected[:12]}…, but the packaged copy is "
                f"{found[:12]}…; deploy the config and code it was trained with, or retrain")
    file = str(record["code"]).split(":", 1)[0]
    helpers = [name for name in record["sha256"] if name != file]
    load_model_code(ModelCandidate(name=str(record["candidate"]), code=str(record["code"]), helpers=helpers),
                    directory)


def check_estimator_shape(estimator: Any, task: Task, reference: str) -> None:
    """The returned object must be an unfitted scikit-learn estimator for the task."""
    from sklearn.base import BaseEstimator, is_classifier, is_regressor

    if isinstance(estimator, type):
        raise InvalidModelCode(f"{reference} returned the class {estimator.__name__}, not an estimator; return an "
                               f"instance, e.g. `return {estimator.__name__}(...)`")
    if not isinstance(estimator, BaseEstimator) or not hasattr(estimator, "fit") \
            or not hasattr(estimator, "predict"):
        raise InvalidModelCode(f"{reference} returned {type(estimator).__name__}, not a scikit-learn estimator; "
                               "return an unfitted Pipeline or estimator (e.g. `return make_pipeline(...)`), "
                               "not a fitted model or a tuple")
    if task is Task.CLASSIFICATION and not is_classifier(estimator):
        raise InvalidModelCode(f"{reference} returned {type(estimator).__name__}, which is not a classifier, for a "
                               "classification target; end the Pipeline with a classifier")
    if task is Task.REGRESSION and not is_regressor(estimator):
        raise InvalidModelCode(f"{reference} returned {type(estimator).__name__}, which is not a regressor, for a "
                               "regression target; end the Pipeline with a regressor")


def fit_failure(reference: str, exc: BaseException) -> InvalidModelCode:
    """One line for an exception raised while the user's estimator was fitted."""
    return InvalidModelCode(f"{reference}: fitting the returned estimator raised {_described(exc)}")


def _import_file(path: Path, module_name: str, reference: str) -> types.ModuleType:
    if not path.is_file():
        raise InvalidModelCode(f"{reference}: {path.name} is not beside the pipeline config ({path.parent}); put it "
                               "there, or fix `code:` / `helpers:` in the config")
    if module_name.startswith(f"{USER_CODE_PACKAGE}.") and USER_CODE_PACKAGE not in sys.modules:
        package = types.ModuleType(USER_CODE_PACKAGE)
        package.__path__ = []
        sys.modules[USER_CODE_PACKAGE] = package
    _USER_FILES.add(str(path))
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # before executing: pickle and dataclasses look classes up by module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        del sys.modules[module_name]
        raise InvalidModelCode(f"{reference}: {path.name} imports {exc.name!r}, which is neither installed in the "
                               "Lambda layers nor declared beside it; add the file under `helpers:` (pure Python "
                               "only) or use a library the dependency layer has") from None
    except Exception as exc:
        del sys.modules[module_name]
        raise InvalidModelCode(f"{reference}: importing {path.name} raised {_described(exc)}") from None
    return module


def _call(reference: str, function: Callable[[], Any]) -> Any:
    try:
        return function()
    except Exception as exc:
        raise InvalidModelCode(f"{reference} raised {_described(exc)}") from None


def _described(exc: BaseException) -> str:
    """`ZeroDivisionError: division by zero (model.py line 12)`: the innermost frame in the user's files."""
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename in _USER_FILES:
            where = f" ({Path(frame.filename).name} line {frame.lineno})"
            break
    if isinstance(exc, SyntaxError) and exc.lineno:
        where = f" ({Path(exc.filename or '').name} line {exc.lineno})"
        return f"SyntaxError: {exc.msg}{where}"
    message = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {message}{where}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
