"""`patched_moto` is the one place the emulator's patches are made, and leaving it restores plain moto."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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
