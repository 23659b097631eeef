"""The package's shape: importable from the checkout root, fully packaged, no import cycles, no private
names across modules."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def package_folder(package: str) -> Path:
    """The folder setuptools installs as ``package`` (the longest package-dir prefix wins)."""
    mapping = CONFIG["package-dir"]
    best = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len)
    rest = package[len(best):].lstrip(".")
    return ROOT / mapping[best] / Path(*rest.split(".")) if rest else ROOT / mapping[best]


def package_modules() -> dict[str, Path]:
    """Module name -> source file, for every module of every installed package (generated code excluded)."""
    modules = {}
    for package in CONFIG["packages"]:
        if package.startswith("optinv.generated"):
            continue
        folder = package_folder(package)
        for path in sorted(folder.glob("*.py")):
            name = package if path.name == "__init__.py" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def project_imports(name: str, path: Path, modules: dict[str, Path]):
    """``(imported module, imported names, line)`` for every optinv import in the file, at any depth."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("optinv"):
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("optinv"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub, [], node.lineno) if sub in modules else (base, [alias.name], node.lineno)


def test_checkout_root_imports_the_package():
    """No folder at the root shadows the package: ``import optinv.algebra`` works from there."""
    assert not (ROOT / "optinv").exists()
    code = "import optinv, optinv.algebra.select, optinv.verify; print(optinv.Signature.__module__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "optinv.algebra.signature"


def test_every_folder_with_python_is_packaged():
    """``pip install .`` ships every subpackage, the templates and the generated modules' data."""
    packaged = {package_folder(p).resolve() for p in CONFIG["packages"]}
    for root in set(CONFIG["package-dir"].values()):
        for init in (ROOT / root).rglob("__init__.py"):
            if "__pycache__" not in init.parts and init.parent.parent.name != "generated":
                assert init.parent.resolve() in packaged, f"{init.parent} is not listed in [tool.setuptools] packages"
    data = CONFIG["package-data"]
    assert "*.j2" in data["optinv.templates"]
    assert {"*/*.py", "*/*.c", "*/*.cu", "*/*.cpp", "*/*.json"} <= set(data["optinv.generated"])


def test_no_private_names_imported_across_modules():
    modules = package_modules()
    offenders = []
    for name, path in modules.items():
        for target, names, line in project_imports(name, path, modules):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private or target.rsplit(".", 1)[-1].startswith("_"):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {', '.join(private) or target}")
    assert not offenders, "\n".join(offenders)


def test_no_import_cycles():
    """Imports at any depth (module level or inside functions) form no cycle between modules."""
    modules = package_modules()
    edges = {name: sorted({t for t, _, _ in project_imports(name, path, modules) if t in modules and t != name})
             for name, path in modules.items()}
    assert edges["optinv.codegen.package"], "the import scan found nothing: check project_imports"
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in edges[node]:
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
