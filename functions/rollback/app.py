"""Rollback API: POST /rollback behind API Gateway's `AWS_IAM` authorization.

The caller is the one API Gateway authenticated from the request's SigV4 signature
(`requestContext.identity.userArn`); the body says only what to roll back to and why. The function starts the
rollback state machine with that caller as `requested_by` (the history record and the `promoted` notification
carry it) and answers 202 with the execution to follow. Its role may do nothing else.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from loopline_runtime.errors import InvalidRequest, UnauthenticatedCaller
from loopline_runtime.request_body import parse_json_body
from loopline_runtime.rollback_request import RollbackRequest

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
app = APIGatewayRestResolver()
sfn = boto3.client("stepfunctions")
STATE_MACHINE_ARN = os.environ.get("ROLLBACK_STATE_MACHINE_ARN", "")


@app.post("/rollback")
def rollback() -> Response:
    body = app.current_event.body
    request = RollbackRequest.from_api(parse_json_body(body) if body else None,
                                       app.current_event.request_context.identity.user_arn)
    execution_arn = request.start(sfn, STATE_MACHINE_ARN)
    logger.info("rollback requested", extra={"requested_by": request.requested_by, "to_version": request.to_version,
                                             "execution_arn": execution_arn})
    return _json(202, {"execution_arn": execution_arn, "requested_by": request.requested_by})


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(payload))


@app.exception_handler(InvalidRequest)
def bad_request(exc: InvalidRequest) -> Response:
    return _json(400, {"message": str(exc)})


@app.exception_handler(UnauthenticatedCaller)
def unauthenticated(exc: UnauthenticatedCaller) -> Response:
    return _json(403, {"message": str(exc)})


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
