"""Every function fits its size budget (code + layers, unzipped): 150 MiB, the predict function 100 MiB.

Measured on the `sam build` output, as `make size` measures it (loopline.size_report): the layers are trimmed by
their Makefiles in that build, so only a build can tell. Without one (`make build`), the test is skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.size_report import MIB, FunctionSize, function_sizes

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = REPO / ".aws-sam" / "build"

# Over budget, and why (measured with `make size`, 2026-12-05): scikit-learn, scipy (with its OpenBLAS), pandas,
# skl2onnx and onnxruntime together are about 241 MiB once trimmed; these functions fit, by 8.6 MiB, only Lambda's
# own 250 MiB. The way under 150 MiB is a container image (10 GB) or no compiled-model check in them; until then a
# function listed here that gets under its budget fails this test, so that it is taken off the list.
# The monitor runs on the serving layer (88.1 MiB) since issue 20. The predict and monitor variants of the
# scikit-learn serving form (chosen explicitly in pipeline.yaml) carry the same layers as train: 241.5 MiB against
# 100 and 150 MiB, stated in the README. docs/function-sizes.md says what each layer holds and the way down.
KNOWN_OVER_BUDGET = {"TrainFunction", "EvaluateFunction", "PredictFunction [ServeScikitLearn]",
                     "MonitorFunction [ServeScikitLearn]"}


@pytest.fixture(scope="module")
def sizes() -> dict[str, FunctionSize]:
    if not (BUILD_DIR / "template.yaml").is_file():
        pytest.skip("no sam build output: run `make build` (or `make size`) first")
    return {fn.name: fn for fn in function_sizes(BUILD_DIR)}


def test_every_function_but_the_known_ones_is_within_its_size_budget(sizes: dict[str, FunctionSize]) -> None:
    # given the built functions
    # when / then exactly the known ones are over their budget, and none is over Lambda's limit
    over = {name for name, fn in sizes.items() if fn.over_budget}
    report = {name: f"{fn.total_bytes / MIB:,.1f} MiB of {fn.budget / MIB:,.0f}"
              for name, fn in sizes.items()}
    assert over == KNOWN_OVER_BUDGET & set(sizes), report
    assert not [name for name, fn in sizes.items() if fn.over_limit], report
