"""The emulator keeps ASL parse trees per definition, and still builds fresh evaluation components per execution."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

from loopline.emulator.state_machine_parse_cache import ParseTreeCache, cache_parse_trees

DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": {"ok": True}, "End": True}}})


def test_a_definition_is_parsed_once_and_each_execution_gets_its_own_components() -> None:
    # given a cache over the real parser, counting the parses
    calls: list[str] = []

    def counting_parse(definition: str) -> tuple[Any, Any]:
        calls.append(definition)
        return AmazonStateLanguageParser.parse(definition)

    cache = ParseTreeCache(counting_parse)

    # when the same definition starts three executions
    results = [cache.parse(DEFINITION) for _ in range(3)]

    # then it was parsed once, the tree is shared and every program is a new object
    assert len(calls) == 1
    assert len({id(tree) for _, tree in results}) == 1
    assert len({id(program) for program, _ in results}) == 3


def test_a_syntax_error_still_raises_and_is_not_kept() -> None:
    # given the patch installed
    with cache_parse_trees():
        # when / then an invalid definition fails every time
        for _ in range(2):
            with pytest.raises(ASLParserException):
                AmazonStateLanguageParser.parse('{"StartAt": 1}')
        # and a valid one parses
        program, tree = AmazonStateLanguageParser.parse(DEFINITION)
        assert program is not None and tree is not None


def test_the_oldest_definitions_are_dropped_beyond_the_limit() -> None:
    # given a cache for two definitions
    calls: list[str] = []
    cache = ParseTreeCache(lambda d: (calls.append(d), AmazonStateLanguageParser.parse(d))[1], max_definitions=2)
    first, second, third = (DEFINITION.replace("Done", name) for name in ("A", "B", "C"))

    # when three are parsed, then the first again
    for definition in (first, second, third, first):
        cache.parse(definition)

    # then the first was parsed twice (dropped when the third came)
    assert calls.count(first) == 2
