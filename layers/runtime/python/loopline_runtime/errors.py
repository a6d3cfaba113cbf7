"""Typed errors. Their class names are the contract: the state machine's Retry/Catch route on them
(Lambda reports `errorType` = the class name) and the API maps them to HTTP status codes."""

from __future__ import annotations


class LooplineError(Exception):
    """Base class; the message is written for the person who has to act on it."""


class InvalidConfig(LooplineError):
    """The pipeline config is missing or invalid."""


class InvalidUpload(LooplineError):
    """An uploaded CSV cannot be used; it is quarantined with this reason."""

    reason_code = "invalid_upload"


class UnparseableCsv(InvalidUpload):
    reason_code = "unparseable_csv"


class MissingTarget(InvalidUpload):
    reason_code = "missing_target"


class SchemaMismatch(InvalidUpload):
    reason_code = "schema_mismatch"


class TooFewRows(InvalidUpload):
    reason_code = "too_few_rows"


class SingleClass(InvalidUpload):
    reason_code = "single_class"


class NoUsableFeatures(InvalidUpload):
    """Besides the target the upload holds only ignored or id-like columns: nothing to learn from."""

    reason_code = "no_usable_features"


class NoDatasets(LooplineError):
    """There is no accepted dataset version to train on."""


class NoChampion(LooplineError):
    """No model has been promoted yet."""


class ArtifactIntegrityError(LooplineError):
    """A model artifact does not match the sha256 recorded in its manifest; it is never loaded."""


class ModelNotCompiled(LooplineError):
    """A model has no compiled (ONNX) form that passed its parity check; it cannot serve or pass the gate."""


class InvalidRequest(LooplineError):
    """A prediction request does not match the model's schema."""


class TrainingFailed(LooplineError):
    """Training could not produce a model (bad data for the chosen task, every candidate failed, ...)."""


class InvalidModelCode(TrainingFailed):
    """A candidate's own code (`code: model.py:build`) cannot be used: it does not import, its function raises or
    returns no estimator, its fit is not deterministic or too slow for the budget, or a step cannot be compiled.
    The message names the file, the line where it can, and the fix; training stops before the search."""


class TrainingUpToDate(LooplineError):
    """A model was already trained on exactly these dataset versions with this config (training is seeded, so a
    rerun would reproduce it); the run stands aside."""


class ChampionChanged(LooplineError):
    """The champion pointer moved between the gate's comparison and the promotion: the challenger was compared
    against a model that no longer serves, so it is not promoted (the run ends in "Challenger rejected")."""


class UnknownModelVersion(LooplineError):
    """A model version named by a person (rollback, approval, report) is not in the registry."""


class RollbackRefused(LooplineError):
    """A rollback target may not serve: it is already the champion, there is no previous champion, or it was
    trained with another feature schema than the champion's (callers send the champion's fields)."""


class UnauthenticatedCaller(LooplineError):
    """A request that should carry API Gateway's IAM-authenticated caller does not: a route without
    `Authorizer: AWS_IAM` in front of a function that records who asked. Refused (403), never guessed."""


class TooLarge(InvalidUpload):
    reason_code = "too_large"


class TooManyColumns(InvalidUpload):
    reason_code = "too_many_columns"


class LineTooLong(InvalidUpload):
    reason_code = "line_too_long"


class InvalidBatch(LooplineError):
    """A batch scoring upload cannot be scored at all (not a CSV, or it lacks the model's feature columns)."""


class PromotionRefused(LooplineError):
    """A promotion asks to pin what the registry's own records do not: a version the gate did not pass, pins or a
    compared-against champion other than the gate recorded, or (a rollback) a version never promoted before."""
