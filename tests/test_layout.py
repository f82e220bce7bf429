"""The house as STYLE.md describes it, checked so it cannot drift: rooms at the top level,
imports that run one way (no cycle at any depth, function-level imports included), modules
of one job each (300 lines at most), sampler names listed only in samplers/, no module
importing its own package's face, arrows that must never be (NEVER), no registry filled as an
import side effect, and a case for every sampler and expert; each rule shown to catch a
planted violation."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "pyro_mlm"
MAX_LINES = 300


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
    (a submodule imported through the package, ``from pyro_mlm.samplers import lengths_move``,
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


# arrows that must never be drawn, room -> room (function-level imports included), and why
NEVER = [
    ("pyro_mlm.design", "pyro_mlm.samplers", "design/ is an input room (sequences, numbering)"),
    ("pyro_mlm.samplers", "pyro_mlm.experts", "samplers ask the Target; the region is region/"),
    ("pyro_mlm.region", "pyro_mlm", "region/ is a floor of its own: it imports no room"),
]


def _forbidden_arrows(graph: dict[str, set[str]]) -> list[str]:
    def inside(module: str, room: str) -> bool:
        return module == room or module.startswith(room + ".")

    found = []
    for source, room, why in NEVER:
        for module, targets in sorted(graph.items()):
            if not inside(module, source):
                continue
            for target in sorted(targets):
                if inside(target, room) and not inside(target, source) and target != "pyro_mlm":
                    found.append(f"{module} -> {target} ({why})")
    return found


def test_no_forbidden_arrow() -> None:
    found = _forbidden_arrows(_imports(_modules()))
    assert not found, f"arrows that must never be: {found}"


def test_the_arrow_check_finds_a_forbidden_arrow(tmp_path, monkeypatch) -> None:
    """The check above can fail: design/ reaching into samplers/ inside a function."""
    package = tmp_path / "pyro_mlm"
    for room in ("design", "samplers"):
        (package / room).mkdir(parents=True)
        (package / room / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "samplers" / "lengths_move.py").write_text("X = 1\n")
    (package / "design" / "sites.py").write_text("def f():\n    return 1\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", package)
    assert _forbidden_arrows(_imports(_modules())) == []
    (package / "design" / "sites.py").write_text(
        "def f():\n    from pyro_mlm.samplers.lengths_move import X\n    return X\n"
    )
    assert _forbidden_arrows(_imports(_modules())) == [
        "pyro_mlm.design.sites -> pyro_mlm.samplers.lengths_move (design/ is an input room "
        "(sequences, numbering))"
    ]


def _registry_side_effects(modules: dict[str, pathlib.Path]) -> list[str]:
    """Statements that fill a table another module owns when a module is imported (at module
    level, or in a package face's ``__getattr__``, which runs on a name's first use): a
    subscript assignment to, or ``update``/``setdefault``/``append``/``extend``/``register``
    called on, a name imported from another module, ``setattr`` on one, and any call of a
    function named ``register...``. A registry is declared where it lives and read from
    there (the sampler and loader tables are declared ``"module:name"`` rows)."""
    filling = {"update", "setdefault", "append", "extend", "register"}
    found = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        imported = {
            alias.asname or alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        runs_on_import: list[ast.AST] = [
            n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))
        ]
        if path.name == "__init__.py":
            runs_on_import += [
                n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"
            ]
        for statement in runs_on_import:
            for node in ast.walk(statement):
                owner = None
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                            owner = target.value.id
                elif isinstance(node, ast.Call):
                    func = node.func
                    if isinstance(func, ast.Attribute) and func.attr.startswith("register"):
                        owner = "register"
                    elif isinstance(func, ast.Name) and func.id.startswith("register"):
                        owner = "register"
                    elif isinstance(func, ast.Attribute) and func.attr in filling:
                        root = func.value
                        while isinstance(root, ast.Attribute):
                            root = root.value
                        owner = root.id if isinstance(root, ast.Name) else None
                    elif isinstance(func, ast.Name) and func.id == "setattr" and node.args:
                        first = node.args[0]
                        owner = first.id if isinstance(first, ast.Name) else None
                if owner == "register" or (owner is not None and owner in imported):
                    found.append(f"{name}:{node.lineno}")
    return found


def test_no_registry_is_filled_as_an_import_side_effect() -> None:
    found = _registry_side_effects(_modules())
    assert not found, f"tables of other modules filled on import: {found}"


def test_the_side_effect_check_finds_a_registry_filled_on_import(tmp_path, monkeypatch) -> None:
    """The check above can fail: the loaders' old shape, a face filling a table below it."""
    package = tmp_path / "pyro_mlm"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / "mlm.py").write_text("LOADERS = {}\n")
    (package / "models" / "load.py").write_text(
        "from pyro_mlm.models.mlm import LOADERS\n\ndef load():\n    LOADERS['x'] = 1\n"
    )
    face = "def __getattr__(name):\n    import pyro_mlm.models.load as load\n    return load\n"
    (package / "models" / "__init__.py").write_text(face)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", package)
    assert _registry_side_effects(_modules()) == []  # filled in a function nobody runs on import
    (package / "models" / "load.py").write_text(
        "from pyro_mlm.models.mlm import LOADERS\n\nLOADERS.update(x=1)\n"
    )
    assert _registry_side_effects(_modules()) == ["pyro_mlm.models.load:3"]
    (package / "models" / "load.py").write_text("def register_constructors():\n    pass\n")
    (package / "models" / "__init__.py").write_text(
        "def __getattr__(name):\n    from pyro_mlm.models import load\n"
        "    load.register_constructors()\n"
    )
    assert _registry_side_effects(_modules()) == ["pyro_mlm.models:3"]


def test_every_sampler_and_expert_has_a_case() -> None:
    """A new sampler or expert joins every check with one entry (tests/samplers/
    sampler_cases.py, tests/experts/expert_cases.py)."""
    from expert_cases import EXPERT_CASES
    from sampler_cases import SAMPLER_CASES

    from pyro_mlm.experts.declared import DECLARED
    from pyro_mlm.samplers.options import DECLARED as SAMPLERS_DECLARED

    assert {case.expert for case in EXPERT_CASES} == set(DECLARED)
    assert {case.sampler for case in SAMPLER_CASES} == set(SAMPLERS_DECLARED)
