"""Canaries for the moto internals the enforcing emulator relies on: each fails when moto changes the name or
shape a gap module patches or reads, instead of the enforcement silently stopping."""

from __future__ import annotations

import inspect

from moto.cloudformation.models import Stack
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.models import MockAWS
from moto.s3.models import FakeBucket
from moto.stepfunctions.parser import quotas

from loopline.emulator.state_machine_credentials import importers_of_boto_client_for


def test_every_request_passes_through_the_one_authorisation_method_iam_enforcement_replaces():
    parameters = list(inspect.signature(ActionAuthenticatorMixin._authenticate_and_authorize_action).parameters)
    assert parameters == ["self", "iam_request_cls", "resource"]


def test_moto_checks_a_stored_bucket_policy_through_fake_bucket_get_permission():
    assert list(inspect.signature(FakeBucket.get_permission).parameters) == ["self", "action", "resource"]


def test_a_stack_becomes_complete_through_mark_creation_complete():
    assert "mark_creation_complete" in inspect.getsource(Stack.create_resources)


def test_the_asl_interpreter_makes_its_task_clients_with_boto_client_for():
    from loopline.emulator.state_machine_credentials import _import_interpreter

    _import_interpreter()
    names = {module.__name__.rsplit(".", 1)[-1] for module in importers_of_boto_client_for()}
    assert {"lambda_eval_utils", "state_task_service_aws_sdk", "resource_eval_s3"} <= names


def test_the_in_process_mock_signs_with_the_key_the_enforcement_treats_as_the_administrator():
    from loopline.emulator.iam_enforcement import ADMINISTRATOR_KEYS

    assert MockAWS()._fake_creds["AWS_ACCESS_KEY_ID"] in ADMINISTRATOR_KEYS


def test_moto_itself_enforces_the_256_kb_state_limit():
    assert quotas.MAX_STATE_SIZE_UTF8_BYTES == 256 * 1024
