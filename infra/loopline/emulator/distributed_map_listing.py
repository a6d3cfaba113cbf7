"""Gap: moto's Distributed Map `ItemReader` with `arn:aws:states:::s3:listObjectsV2` makes one ListObjectsV2 call,
so a prefix of more than 1,000 objects yields only its first 1,000 items (and an empty prefix raises a KeyError
on `Contents`). AWS's ItemReader reads every page. Follow the continuation tokens, as AWS does."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any
from unittest import mock

from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import resource_eval_s3

_ResourceEvalS3 = resource_eval_s3.ResourceEvalS3


def list_every_page(s3_client: Any, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object of a ListObjectsV2 listing, across pages, in S3's (lexicographic) key order."""
    items: list[dict[str, Any]] = []
    request = dict(parameters)
    while True:
        response = s3_client.list_objects_v2(**request)
        items.extend(response.get("Contents", []))
        token = response.get("NextContinuationToken")
        if not response.get("IsTruncated") or not token:
            return items
        request["ContinuationToken"] = token


def read_every_listing_page() -> AbstractContextManager[object]:
    """A patch of moto's ItemReader so listObjectsV2 returns the items of every page."""

    def _handle_list_objects_v2(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        s3_client = _ResourceEvalS3._get_s3_client(resource_runtime_part=resource_runtime_part,
                                                   state_credentials=state_credentials)
        env.stack.append(list_every_page(s3_client, env.stack.pop()))

    return mock.patch.object(_ResourceEvalS3, "_handle_list_objects_v2", staticmethod(_handle_list_objects_v2))
