"""The register step of a job-trained challenger ("Read the training job's result", TrainFunction action
`job_result`): what the SageMaker training job wrote is verified before evaluation (each pinned artifact's sha256,
the compiled form that serves, its parity check), and refused with the reason when one does not hold."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from loopline_runtime.bucket_layout import model_prefix, training_job_result_key
from loopline_runtime.errors import ArtifactIntegrityError, TrainingFailed
from loopline_runtime.registry import COMPILED_ARTIFACT, ModelRegistry
from loopline_runtime.storage import ObjectStore

JOB = "loopline-train-20261205000000-abcdef12"


@pytest.fixture
def read_job_result(load_handler: Callable[[str], ModuleType], store: ObjectStore,
                    lambda_context: Any) -> Callable[[str], dict[str, Any]]:
    """Write the job's result.json for `version` (what the entry point writes), then run the state's task."""
    train = load_handler("train")

    def run(version: str) -> dict[str, Any]:
        store.put_json(training_job_result_key(JOB), {
            "model_version": version, "holdout_key": f"{model_prefix(version)}holdout.csv", "metric": "f1",
            "cv_score": 0.9, "candidate": "logistic_regression", "fingerprint": "f", "resumed": False,
            "reason": "manual"})
        result: dict[str, Any] = train.lambda_handler({"action": "job_result", "job_name": JOB}, lambda_context)
        return result

    return run


def _rewrite_manifest(store: ObjectStore, registry: ModelRegistry, version: str, **changes: Any) -> None:
    store.put_json(f"{model_prefix(version)}manifest.json", {**registry.manifest(version), **changes})


def test_a_verified_challenger_goes_on_to_evaluation(register_model, read_job_result):
    version = register_model()
    assert read_job_result(version)["model_version"] == version


def test_a_replaced_artifact_is_refused_with_its_sha256(register_model, read_job_result, store, registry):
    # given a job's challenger whose compiled artifact was replaced after its sha256 was recorded (the manifest
    # names the replacement's S3 version, the sha256 of what was compiled)
    version = register_model()
    manifest = registry.manifest(version)
    key = f"{model_prefix(version)}{COMPILED_ARTIFACT}"
    replaced = store.put_version(key, b"not the compiled model")
    _rewrite_manifest(store, registry, version, compiled={
        **manifest["compiled"], "artifact": {**manifest["compiled"]["artifact"], "version_id": replaced}})

    # then the register step refuses it, naming the artifact and the mismatch
    with pytest.raises(ArtifactIntegrityError, match=rf"model {version} artifact sha256 .* does not match its "
                                                     r"manifest .* for model\.onnx"):
        read_job_result(version)


def test_a_failed_parity_check_is_refused(register_model, read_job_result, store, registry):
    version = register_model()
    compiled = registry.manifest(version)["compiled"]
    parity = {"passed": False, "label_mismatches": 3, "rows": 60}
    _rewrite_manifest(store, registry, version, compiled={**compiled, "parity": parity})
    with pytest.raises(TrainingFailed, match=rf"model {version} written by training job {JOB}: the parity check of "
                                             r"its compiled \(ONNX\) form did not pass \(.*label_mismatches"):
        read_job_result(version)


def test_a_missing_parity_record_or_compiled_form_is_refused(register_model, read_job_result, store, registry):
    # a parity check that is not recorded
    version = register_model()
    compiled = registry.manifest(version)["compiled"]
    _rewrite_manifest(store, registry, version, compiled={k: v for k, v in compiled.items() if k != "parity"})
    with pytest.raises(TrainingFailed, match=r"the parity check of its compiled \(ONNX\) form is not recorded"):
        read_job_result(version)

    # no compiled form where the model serves ONNX
    other = register_model()
    _rewrite_manifest(store, registry, other, compiled={"form": "onnx", "error": "TypeError: no converter"})
    with pytest.raises(TrainingFailed, match=rf"model {other} written by training job {JOB} has no compiled \(ONNX\) "
                                             r"form, which is what serves: TypeError: no converter"):
        read_job_result(other)
