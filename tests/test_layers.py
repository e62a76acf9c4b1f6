"""Dependencies point one way: views -> orchestration -> router/relay -> providers -> transport and parsing
helpers. Each module sits in one layer and imports at run time only from its own layer or lower ones
(imports under `if TYPE_CHECKING:` are annotations, not dependencies)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A new module must be placed here, so its place in the map is a decision, not an accident.
LAYERS = (
    ("data, transport and parsing helpers", {"utils.chat", "utils.env", "utils.errors", "utils.clock", "utils.sse", "utils.quota",
                                             "utils.upstream", "utils.upstream_pool", "utils.wire", "utils.logs", "utils.disconnect",
                                             "utils.state", "utils.counters", "utils.cache", "utils.cache_entry",
                                             "utils.secretfile", "utils.events"}),
    ("providers", {"providers"}),
    ("settings and bookkeeping", {"utils.settings", "utils.schema", "utils.migrations", "utils.keys", "utils.dbops",
                                  "utils.metrics", "utils.prometheus", "utils.tables", "utils.keyfields",
                                  "utils.usage", "utils.webhooks", "utils.webhook_delivery", "utils.notifier"}),
    ("router and relay", {"utils.circuits", "utils.outcomes", "utils.router", "utils.relay", "utils.model_watch"}),
    ("request orchestration", {"utils.auth", "utils.limits", "utils.validation", "utils.openai_request",
                               "utils.requestlog", "utils.dispatch", "utils.budgets", "utils.response_cache",
                               "utils.panel_auth"}),
    ("views", {"routes", "routes.commands"}),  # the operator commands are an interface like the views
    ("the factory", {"app"}),
)
PACKAGES = ("utils", "providers", "routes")


def layer_of(module: str) -> int:
    for rank, (_, members) in enumerate(LAYERS):
        if module in members or module.split(".")[0] in members:
            return rank
    raise AssertionError(f"{module} has no place in tests/test_layers.py LAYERS")


def modules() -> list[str]:
    found = ["app"]
    for package in PACKAGES:
        found += [f"{package}.{path.stem}" for path in sorted((ROOT / package).glob("*.py")) if path.stem != "__init__"]
    return found


def runtime_imports(module: str) -> set[str]:
    path = ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from utils import sse` imports the module utils.sse
            names.update(f"{node.module}.{alias.name}" if node.module in PACKAGES else node.module
                         for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in names if name.split(".")[0] in PACKAGES + ("app",)}


@pytest.mark.parametrize("module", modules())
def test_a_module_imports_only_from_its_own_layer_or_below(module):
    rank = layer_of(module)
    upward = sorted(name for name in runtime_imports(module) if layer_of(name) > rank)
    assert upward == [], f"{module} ({LAYERS[rank][0]}) imports from a higher layer: {upward}"


def test_no_module_outside_the_tests_passes_250_lines():
    long = {module: lines for module in modules()
            if (lines := len((ROOT / (module.replace(".", "/") + ".py")).read_text().splitlines())) > 250}
    assert long == {}
