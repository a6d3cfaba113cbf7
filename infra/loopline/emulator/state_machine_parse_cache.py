"""Gap (speed): moto's ASL interpreter parses the definition with a pure-Python ANTLR parser at the start of every
execution: 0.07-0.25 s for the training state machine on a loaded 2-core machine, growing with the definition,
while it holds the GIL that the API server needs (a burst of EventBridge events starting executions slows every
other call). The parse tree depends only on the definition's text, so it is kept per definition; the evaluation
components, which hold per-execution state, are still built fresh from it for every execution."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from unittest import mock

from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

MAX_DEFINITIONS = 32


class ParseTreeCache:
    """`AmazonStateLanguageParser.parse` with the ANTLR parse tree kept for the last MAX_DEFINITIONS definitions."""

    def __init__(self, parse: Callable[[str], tuple[Any, Any]], max_definitions: int = MAX_DEFINITIONS) -> None:
        self._parse = parse
        self._max = max_definitions
        self._trees: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def parse(self, definition: str) -> tuple[Any, Any]:
        with self._lock:
            tree = self._trees.get(definition)
            if tree is not None:
                self._trees.move_to_end(definition)
        if tree is None:
            program, tree = self._parse(definition)  # syntax errors raise here, as before, and are not kept
            with self._lock:
                self._trees[definition] = tree
                while len(self._trees) > self._max:
                    self._trees.popitem(last=False)
            return program, tree
        return Preprocessor().visit(tree), tree


def cache_parse_trees() -> AbstractContextManager[object]:
    """The patch (not applied): parse trees kept per definition text."""
    cache = ParseTreeCache(AmazonStateLanguageParser.parse)
    return mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(cache.parse))
