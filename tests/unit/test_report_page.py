"""The report page draws what the functions recorded as plain text: a `$` in a feature name is not matplotlib math,
a `<!--<script>` in a recorded value does not swallow the page, and a challenger waiting for approval is not shown
as promoted."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from loopline.operate.report.page import render_model_page
from loopline.operate.report.sources import ModelReportInputs

HOSTILE = ["cost_$_usd_$", "<!--<script>alert(1)</script>", "plain"]


def _inputs(evaluation: dict[str, Any] | None, *, history: list[dict[str, Any]] | None = None) -> ModelReportInputs:
    numbers = {"permutation_importance": {"features": HOSTILE, "mean": [0.3, 0.2, 0.1], "std": [0.01, 0.01, 0.01],
                                          "metric": "f1", "repeats": 5, "rows": 100}}
    manifest = {"version": "m-1", "pipeline": "p", "task": "classification", "metric": "f1"}
    return ModelReportInputs("m-1", manifest, evaluation, numbers, None, history or [])


def test_feature_names_with_dollars_and_markup_are_drawn_and_embedded_as_plain_text() -> None:
    # when the page of a model whose feature names hold `$` pairs and an HTML comment opener is rendered
    page = render_model_page(_inputs({"promote": False, "reasons": ["below the gate"]}))

    # then it renders, no "<" is left inside the embedded JSON, and that JSON reads back to the names
    block = re.search(r'<script type="application/json" id="recorded-numbers">(.*?)</script>', page, re.S)
    assert block is not None and "<" not in block.group(1)
    assert json.loads(block.group(1))["numbers"]["permutation_importance"]["features"] == HOSTILE
    assert "<!--" not in page.replace("&lt;!--", "")


@pytest.mark.parametrize(("evaluation", "history", "verdict"), [
    ({"promote": True, "approval_required": True}, [], "PASSED THE GATE, AWAITING APPROVAL"),
    ({"promote": True}, [{"version": "m-1"}], "PROMOTED"),
    ({"promote": False}, [], "REJECTED"),
])
def test_the_gate_banner_says_promoted_only_for_a_version_that_was_promoted(
    evaluation: dict[str, Any], history: list[dict[str, Any]], verdict: str,
) -> None:
    # when the page is rendered for a gate decision and what came of it
    page = render_model_page(_inputs({**evaluation, "reasons": ["ok"]}, history=history))

    # then the banner says it
    assert re.search(r'<p class="verdict \w+">(.*?)</p>', page).group(1) == verdict  # type: ignore[union-attr]
