"""The package's shape: no module imports upward, and modules and functions stay small.

Layers, lowest first; a module may import only from its own or lower layers, so a change low in
the stack never needs anything above it. Modules still over the size limits are listed as debt
(to split with the generator and benchmark rework), so no new one can join them unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
PACKAGE = Path(__file__).resolve().parent.parent / "chatbot"
LAYERS = [
    {
        "config",
        "errors",
        "text",
        "atomic",
        "progress",
        "terms",
        "grounded",
        "kinds",
        "acronyms",
        "needs",
        "tokens",
    },
    {"corpus", "embed_cache", "answer"},
    {
        "readers",
        "entries",
        "exports",
        "chunking",
        "embedding",
        "generate",
        "answer_cache",
        "gaps",
        "export",
    },
    {"index"},
    {"relevance", "sentence_pick", "reorder"},
    {"retrieve", "rewrite", "candidates", "parts"},
    {"verify", "reader", "prompt", "compose", "draft"},
    {"pipeline"},
    {"api"},
    {"evaluate", "ui_format", "doctor", "insights", "watch", "presets"},
    {"ui_layout", "bench", "ui_insights"},
    {"ui_index"},
    {"ui"},
    {"cli"},
]
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 60
DEBT_MODULES: set[str] = set()
DEBT_FUNCTIONS: set[tuple[str, str]] = set()


def module_files() -> dict[str, Path]:
    """Each module by dotted name under the package: ``index`` or ``generate.onnx_genai``."""
    return {
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts): p
        for p in sorted(PACKAGE.rglob("*.py"))
    }


def modules() -> dict[str, ast.Module]:
    return {name: ast.parse(p.read_text(encoding="utf-8")) for name, p in module_files().items()}


def stage(name: str) -> str:
    """The layer a module belongs to is its top-level name: a subpackage is one stage."""
    return name.split(".")[0]


def layer_of(name: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if name in layer)


def test_every_module_has_a_layer() -> None:
    assert {stage(name) for name in modules()} - {"__init__"} == set().union(*LAYERS)


def test_no_module_imports_upward() -> None:
    upward = []
    for name, tree in modules().items():
        if name == "__init__":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chatbot."):
                target = node.module.split(".")[1]
                if layer_of(target) > layer_of(stage(name)):
                    upward.append(f"{name} -> {target}")
    assert upward == []


def test_modules_and_functions_stay_small() -> None:
    big_modules, big_functions = set(), set()
    files = module_files()
    for name, tree in modules().items():
        lines = files[name].read_text(encoding="utf-8").count("\n")
        if lines > MAX_MODULE_LINES:
            big_modules.add(name)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    big_functions.add((name, node.name))
    assert big_modules <= DEBT_MODULES, big_modules - DEBT_MODULES
    assert big_functions <= DEBT_FUNCTIONS, big_functions - DEBT_FUNCTIONS


def test_importing_the_package_changes_no_environment() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import os; before = dict(os.environ); "
        "import chatbot.config, chatbot.retrieve, chatbot.pipeline, chatbot.ui; "
        "print(sorted(set(os.environ) - set(before)))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
