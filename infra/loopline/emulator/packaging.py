"""Package the working tree like `sam package`: zip local CodeUri/ContentUri dirs and upload local files to S3.

The RuntimeLayer ships the validated pipeline config (pipeline.json) next to `loopline_runtime`, as `sam build`
does. A requirements-only layer (ServingLayer, DataLayer, DependenciesLayer) is uploaded as is and never pip-installed
locally: its staged copy gets a `python/` view of exactly the venv distributions it names (layer_sites).
"""

from __future__ import annotations

import copy
import hashlib
import io
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.emulator.layer_sites import stage_requirements_layer
from loopline_runtime.config import PipelineConfig, bundle_config

RUNTIME_PACKAGE = "loopline_runtime"
_SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache"}


@dataclass
class PackagedTemplate:
    """The SAM template with S3 URIs instead of local paths, and where each layer's content was staged."""

    template: dict[str, Any]
    # S3 key of a layer zip -> the staged directory it was zipped from (workers put <dir>/python on sys.path)
    layer_dirs_by_key: dict[str, Path] = field(default_factory=dict)


def zip_directory(directory: Path) -> bytes:
    """A deterministic zip of `directory` (sorted entries, fixed timestamps, no caches/bytecode)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory)
            if path.is_dir() or _SKIPPED_PARTS & set(relative.parts) or path.suffix == ".pyc":
                continue
            info = zipfile.ZipInfo(relative.as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def stage_layer(source: Path, staging_dir: Path, config: PipelineConfig, config_dir: Path | None = None) -> Path:
    """Copy a layer dir to `staging_dir`; bundle the pipeline config (and the model code it names, from
    `config_dir`) if it holds the runtime package."""
    dest = staging_dir / source.name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*_SKIPPED_PARTS, "*.pyc"))
    runtime_package = dest / "python" / RUNTIME_PACKAGE
    if runtime_package.is_dir():
        bundle_config(config, runtime_package, config_dir=config_dir)
    return dest


def package_template(
    sam_template: dict[str, Any],
    template_dir: Path,
    staging_dir: Path,
    s3_client: Any,
    bucket: str,
    config: PipelineConfig,
    config_dir: Path | None = None,
) -> PackagedTemplate:
    """Upload every local artifact the template names to `bucket` and return the rewritten template."""
    template = copy.deepcopy(sam_template)
    packaged = PackagedTemplate(template=template)
    s3_client.create_bucket(Bucket=bucket)
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties") or {}
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function" and _is_local(properties.get("CodeUri")):
            body = zip_directory(template_dir / properties["CodeUri"])
            properties["CodeUri"] = f"s3://{bucket}/{_upload(s3_client, bucket, logical_id, body, 'zip')}"
        elif kind == "AWS::Serverless::LayerVersion" and _is_local(properties.get("ContentUri")):
            staged = stage_layer(template_dir / properties["ContentUri"], staging_dir / "layers", config,
                                 config_dir)
            key = _upload(s3_client, bucket, logical_id, zip_directory(staged), "zip")
            properties["ContentUri"] = f"s3://{bucket}/{key}"
            stage_requirements_layer(staged)  # after zipping: the view is symlinks into the venv
            packaged.layer_dirs_by_key[key] = staged
        elif kind == "AWS::Serverless::StateMachine" and _is_local(properties.get("DefinitionUri")):
            body = (template_dir / properties["DefinitionUri"]).read_bytes()
            properties["DefinitionUri"] = {
                "Bucket": bucket,
                "Key": _upload(s3_client, bucket, logical_id, body, "json"),
            }
    return packaged


def _is_local(uri: Any) -> bool:
    return isinstance(uri, str) and not uri.startswith("s3://")


def _upload(s3_client: Any, bucket: str, logical_id: str, body: bytes, extension: str) -> str:
    # content-addressed like `sam package`, so an unchanged artifact keeps its key
    key = f"{logical_id}/{hashlib.sha256(body).hexdigest()}.{extension}"
    s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    return key
