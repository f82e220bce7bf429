"""The house as STYLE.md describes it, checked so it cannot drift: rooms at the top level,
imports that run one way (no cycle at any depth, function-level imports included), modules
of one job each (about 300 lines at most), and sampler names listed only in samplers/."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "pyro_mlm"
MAX_LINES = 320  # "about 300": a docstring's derivation may push one a little over


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(modules: dict[str, pathlib.Path]) -> dict[str, set[str]]:
    """Module -> modules it imports anywhere in its body (a parent package's own
    ``__init__`` excluded: a subpackage's modules reach their registry through it)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + [base] * bool(base))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def test_no_import_cycle_at_any_depth() -> None:
    graph = _imports(_modules())
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for target in sorted(graph[node]):
            visit(target, [*path, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


def test_rooms_at_the_top_and_modules_of_one_job() -> None:
    flat = sorted(p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(flat) <= 10, f"{len(flat)} modules directly in pyro_mlm/: {flat}"
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_sampler_names_are_listed_only_in_samplers() -> None:
    from pyro_mlm.samplers.options import SAMPLER_OPTIONS

    names = set(SAMPLER_OPTIONS)
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "samplers":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
                items = node.keys if isinstance(node, ast.Dict) else node.elts
                strings = {i.value for i in items if isinstance(i, ast.Constant)}
                if len(strings & names) >= 2:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not found, f"lists of sampler names outside samplers/: {found}"


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch) -> None:
    """The check above can fail: a two-module package that imports itself in a circle."""
    package = tmp_path / "pyro_mlm"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pyro_mlm import b\n")
    (package / "b.py").write_text("from pyro_mlm.a import f\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", package)
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycle_at_any_depth()


def _face_imports(modules: dict[str, pathlib.Path]) -> list[str]:
    """``module: name`` for every name a module takes from its own package's ``__init__``
    (a submodule imported through the package, ``from pyro_mlm.samplers import indel``,
    is not one; a package's ``__main__`` is the entry point and may)."""
    found = []
    for name, path in modules.items():
        if path.name in ("__init__.py", "__main__.py") or "." not in name:
            continue
        package = name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + [base] * bool(base))
                if base != package:
                    continue
                found += [
                    f"{name}: {a.name}" for a in node.names if f"{package}.{a.name}" not in modules
                ]
            elif isinstance(node, ast.Import):
                found += [f"{name}: import {a.name}" for a in node.names if a.name == package]
    return found


def test_no_module_imports_its_own_package_face() -> None:
    """A package's ``__init__`` re-exports its modules for users; a module of the package
    that imports from it runs the whole face first (replica exchange built its inner
    sampler through ``pyro_mlm.samplers``, which imports the replica module): the one-way
    rule inside a room."""
    found = _face_imports(_modules())
    assert not found, f"modules importing their own package's face: {found}"


def test_the_face_check_finds_a_face_import(tmp_path, monkeypatch) -> None:
    """The check above can fail: a module that takes a name from its package's face."""
    package = tmp_path / "pyro_mlm"
    (package / "rooms").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "rooms" / "__init__.py").write_text("from pyro_mlm.rooms.a import f\n")
    (package / "rooms" / "a.py").write_text("def f():\n    pass\n")
    (package / "rooms" / "b.py").write_text("from pyro_mlm.rooms import a\n")  # a submodule
    monkeypatch.setattr(__import__(__name__), "PACKAGE", package)
    assert _face_imports(_modules()) == []
    (package / "rooms" / "c.py").write_text("def g():\n    from . import f\n")
    assert _face_imports(_modules()) == ["pyro_mlm.rooms.c: f"]
