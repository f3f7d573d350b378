"""The web door's handlers are plain module-level functions (importable and testable alone)
and small enough to read in one screen."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from screening.web import api, pages

WEB = Path(__file__).resolve().parents[2] / "screening" / "web"
LONGEST = 60


def _importable(handler: Callable[..., Any]) -> bool:
    module = importlib.import_module(handler.__module__)
    return getattr(module, handler.__qualname__, None) is handler


def test_every_page_and_api_handler_is_a_module_level_function() -> None:
    handlers = [r.endpoint for r in pages.routes()] + [op.handler for op in api.OPERATIONS]
    assert len(handlers) >= 47  # 29 pages and 18 API operations
    closures = [h.__qualname__ for h in handlers if not _importable(h)]
    assert closures == []


def test_no_function_in_the_web_door_is_longer_than_a_screen() -> None:
    long = []
    for path in sorted(WEB.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > LONGEST:
                    long.append(f"{path.relative_to(WEB)}:{node.lineno} {node.name} ({lines})")
    assert long == []
