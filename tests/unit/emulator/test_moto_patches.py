"""`patched_moto` is the one place the emulator's patches are made, and leaving it restores plain moto."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import pytest
from moto.awslambda.models import LambdaFunction

from loopline.emulator.lambda_invocation import LambdaRuntime
from loopline.emulator.moto_patches import patched_moto


def _moto_attributes() -> dict[tuple[str, str, str], Any]:
    """Every attribute of every loaded moto module and of the classes defined in it, by identity."""
    found: dict[tuple[str, str, str], Any] = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "moto" or module_name.startswith("moto.")):
            continue
        for name, value in list(vars(module).items()):
            found[(module_name, "", name)] = value
            if isinstance(value, type) and value.__module__ == module_name:
                for attribute, member in list(vars(value).items()):
                    found[(module_name, name, attribute)] = member
    return found


def test_leaving_the_context_restores_every_patched_attribute(tmp_path: Path) -> None:
    # given
    runtime = LambdaRuntime("http://127.0.0.1:1", tmp_path)
    before = _moto_attributes()

    # when
    with patched_moto(runtime, alarm_tick_seconds=60.0):
        inside = _moto_attributes()
        patched = {key for key, value in before.items() if inside.get(key) is not value}
        invoke_inside = LambdaFunction._invoke_lambda
    after = _moto_attributes()

    # then
    assert ("moto.awslambda.models", "LambdaFunction", "_invoke_lambda") in patched
    assert invoke_inside is not before[("moto.awslambda.models", "LambdaFunction", "_invoke_lambda")]
    assert {key for key in patched if after.get(key) is not before[key]} == set()


def _patched_callables() -> list[tuple[str, Any, Any]]:
    """(moto name, moto's function, the emulator's replacement) for each patched moto function or method."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        runtime = LambdaRuntime("http://127.0.0.1:1", Path(folder))
        before = _moto_attributes()
        with patched_moto(runtime, alarm_tick_seconds=60.0):
            inside = _moto_attributes()
    found = []
    for key, original in before.items():
        replacement = inside.get(key)
        if replacement is original:
            continue
        original, replacement = _function(original), _function(replacement)
        if original is not None and replacement is not None:
            found.append((".".join(part for part in key if part), original, replacement))
    return sorted(found, key=lambda item: item[0])


def _function(value: Any) -> Any:
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    return value if inspect.isfunction(value) else None


PATCHED = _patched_callables()


def test_the_emulator_patches_moto_functions_at_all() -> None:
    # then (the canaries below are not vacuous: the private names the gap modules replace are among them)
    names = {name for name, _, _ in PATCHED}
    assert {"moto.awslambda.models.LambdaFunction._invoke_lambda",
            "moto.core.authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action",
            "moto.s3.notifications._get_s3_event", "moto.s3.notifications._invoke_awslambda"} <= names


@pytest.mark.parametrize(("name", "original", "replacement"), PATCHED, ids=[name for name, _, _ in PATCHED])
def test_each_replacement_takes_the_parameters_of_the_moto_function_it_replaces(
        name: str, original: Any, replacement: Any) -> None:
    """A canary per patched moto name: when a moto release renames or reorders a parameter of a function a gap
    module replaces, this fails here instead of the replacement failing (or being bypassed) inside the emulator."""
    # given
    replacement_parameters = inspect.signature(replacement).parameters
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in replacement_parameters.values()):
        pytest.skip(f"{name}: the replacement passes any arguments through")

    # when
    expected = list(inspect.signature(original).parameters)

    # then
    assert list(replacement_parameters) == expected, f"moto's {name} now takes {expected}; update its gap module"
