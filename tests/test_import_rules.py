"""The layering in docs/architecture.md, enforced: who may import whom.

Imports are read from the source with ``ast`` (module level and inside functions alike, since
a lazy import is still a dependency; ``if TYPE_CHECKING:`` blocks aside, since annotations
import nothing at run time), so the rules hold for code paths no test exercises.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from rnnspec.checks.suite import CHECK_CATEGORIES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rnnspec", "reference", "conformance")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def resolve(name: str) -> str | None:
    """The project module ``name`` refers to: itself, or the package that holds it."""
    while name:
        if name in modules():
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def imports(module: str) -> frozenset[str]:
    """The project modules that ``module`` imports, anywhere in its source."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: no import at run time
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # a submodule named in the import, else the package whose attribute it is
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base
                for alias in node.names
            ]
        else:
            continue
        found.update(target for name in names if (target := resolve(name)) not in (None, module))
    return frozenset(found)


def cycle_through(start: str) -> list[str] | None:
    """An import cycle that returns to ``start``, as the list of modules on it."""
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        module, path = stack.pop()
        for target in sorted(imports(module)):
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_import_cycle(module):
    cycle = cycle_through(module)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    "module", [m for m in sorted(modules()) if not m.startswith("conformance")]
)
def test_library_never_imports_the_suite(module):
    suite = sorted(target for target in imports(module) if target.startswith("conformance"))
    assert not suite, f"{module} imports {suite}: the plugin wires, the library never needs it"


CATEGORY_MODULES = [f"rnnspec.checks.{category}" for category in CHECK_CATEGORIES]


@pytest.mark.parametrize("module", CATEGORY_MODULES)
def test_category_modules_never_import_each_other(module):
    """What two categories share lives below them (``rnnspec.checks.assertions``, ...)."""
    others = sorted(imports(module) & set(CATEGORY_MODULES))
    assert not others, f"{module} imports {others}: move what they share to rnnspec/checks/"


def test_the_rules_see_imports():
    """The reader finds a known import, so the rules above cannot pass by reading nothing."""
    assert "rnnspec.model" in imports("rnnspec.codegen")
    assert "rnnspec.codegen" in imports("rnnspec.spec")
    assert "rnnspec.checks" in imports("rnnspec.checks.parity")
    assert "rnnspec.checks.assertions" in imports("rnnspec.checks.parity")
    assert set(CATEGORY_MODULES) <= set(modules())


def test_only_the_command_line_imports_the_commands():
    """The commands sit on top: the modules they call never import them."""

    def is_command(module: str) -> bool:
        return module == "rnnspec.commands" or module.startswith("rnnspec.commands.")

    importers = sorted(
        module
        for module in modules()
        if module != "rnnspec.cli" and not is_command(module)
        if any(is_command(target) for target in imports(module))
    )
    assert not importers, f"{importers} import rnnspec.commands"
