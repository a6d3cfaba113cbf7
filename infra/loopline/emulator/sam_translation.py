"""SAM -> CloudFormation offline, as the `AWS::Serverless-2016-10-31` transform does in AWS."""

from __future__ import annotations

from typing import Any

from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from loopline.emulator.local_access import local_session


def translate(sam_template: dict[str, Any], parameter_values: dict[str, str], region: str) -> dict[str, Any]:
    """Translate a packaged SAM template (S3 URIs, no local paths) to plain CloudFormation.

    The managed-policy map is stubbed (empty): looking it up needs AWS credentials, and the template only uses
    SAM policy templates and inline statements, which translate without it.
    """
    translator = Translator(
        managed_policy_map=None,
        sam_parser=Parser(),
        # only the region is read from the session (pseudo parameters); no call is made
        boto_session=local_session(region),
    )
    return translator.translate(sam_template, parameter_values, get_managed_policy_map=dict)
