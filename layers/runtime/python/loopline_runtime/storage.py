"""The artifact store: a thin S3 adapter so domain code deals in keys, bytes and JSON, never in boto3 shapes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef


class ObjectNotFound(KeyError):
    """No object at that key."""


class ObjectExists(Exception):
    """A create-only write found the key already taken (S3 If-None-Match: *)."""


class ObjectChanged(Exception):
    """A conditional write found the object changed since it was read (S3 If-Match on the ETag read)."""


class ObjectStore:
    """Keys, bytes and JSON in one S3 bucket."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.client = client or boto3.client("s3")

    @classmethod
    def from_env(cls) -> ObjectStore:
        """The artifact bucket named by the function's environment (ARTIFACT_BUCKET)."""
        return cls(os.environ["ARTIFACT_BUCKET"])

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectNotFound(key) from None
            raise

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        """The object's body as a stream: read it in pieces, never whole (bounded memory for large uploads); with
        `version_id`, exactly that S3 version (the one an event names, not a newer upload to the same key)."""
        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]  # type: ignore[return-value]
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectNotFound(key) from None
            raise

    def size(self, key: str) -> int:
        """The object's size in bytes (a HEAD request: nothing is downloaded)."""
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectNotFound(key) from None
            raise

    def head(self, key: str, version_id: str | None = None) -> tuple[int, dict[str, str]]:
        """The size and user metadata (x-amz-meta-*) of the object (of that S3 version), from one HEAD request."""
        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key, **extra)
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}:
                raise ObjectNotFound(key) from None
            raise
        return int(response["ContentLength"]), dict(response.get("Metadata", {}))

    def metadata(self, key: str) -> dict[str, str]:
        """The object's user metadata (x-amz-meta-*), from a HEAD request."""
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key).get("Metadata", {}))
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectNotFound(key) from None
            raise

    def copy(self, source_key: str, key: str, *, version_id: str | None = None) -> None:
        """A server-side copy inside the bucket (of that S3 version of the source): the bytes never pass through
        this process (multipart above 8 MB, so objects past S3's 5 GB single-copy limit copy too)."""
        source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": source_key}
        if version_id:
            source["VersionId"] = version_id
        self.client.copy(source, self.bucket, key)

    def put_file(self, key: str, path: str | os.PathLike[str], *,
                 content_type: str = "application/octet-stream") -> None:
        """Upload a local file in parts (bounded memory whatever its size)."""
        self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type})

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def get_version(self, key: str, version_id: str | None = None) -> tuple[bytes, str | None]:
        """An object's bytes and their S3 VersionId; with `version_id`, exactly that version (None when the bucket
        is not versioned)."""
        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, **extra)
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}:
                raise ObjectNotFound(key) from None
            raise
        found = response.get("VersionId")
        return response["Body"].read(), (None if found in (None, "null") else str(found))

    def put_version(self, key: str, body: bytes, *, content_type: str = "application/octet-stream",
                    create_only: bool = False) -> str | None:
        """Write an object and return the S3 VersionId of what was written (None when the bucket is not versioned);
        with create_only the write fails with ObjectExists if the key is taken."""
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if create_only else {}
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type,
                                              **extra)
        except ClientError as exc:
            if _code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise ObjectExists(key) from None
            raise
        found = response.get("VersionId")
        return None if found in (None, "null") else str(found)

    def put_bytes(self, key: str, body: bytes, *, content_type: str = "application/octet-stream",
                  create_only: bool = False, if_match: str | None = None) -> str:
        """Write an object and return its ETag.

        With create_only the write fails with ObjectExists if the key is taken (If-None-Match: *); with if_match
        it fails with ObjectChanged unless the object still has that ETag (If-Match).
        """
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if create_only else {}
        if if_match is not None:
            extra["IfMatch"] = if_match
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type,
                                              **extra)
        except ClientError as exc:
            code = _code(exc)
            if if_match is not None and code in {"PreconditionFailed", "412", "ConditionalRequestConflict",
                                                 "NoSuchKey", "404"}:
                raise ObjectChanged(key) from None
            if code in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise ObjectExists(key) from None
            raise
        return str(response.get("ETag", ""))

    def put_json(self, key: str, value: Any, *, create_only: bool = False, if_match: str | None = None) -> str:
        body = json.dumps(value, indent=2, sort_keys=True, default=str).encode("utf-8")
        return self.put_bytes(key, body, content_type="application/json", create_only=create_only,
                              if_match=if_match)

    def get_json_with_etag(self, key: str) -> tuple[Any, str]:
        """The object's JSON and the ETag of exactly those bytes (for a later If-Match write)."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectNotFound(key) from None
            raise
        return json.loads(response["Body"].read()), str(response["ETag"])

    def exists(self, key: str) -> bool:
        return self.etag(key) is not None

    def etag(self, key: str) -> str | None:
        """The object's ETag, or None when there is no object (a cheap change detector)."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)["ETag"]
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under prefix, in S3's (lexicographic) order."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
