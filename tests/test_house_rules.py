"""House rules that are checked by reading the package: numpydoc sections of the public API.

Every public function and method (a name in a public module's ``__all__``,
defined in that module) documents each of its parameters in a numpydoc
``Parameters`` section, and names what it raises in a ``Raises`` section when
its body raises. The docstrings are parsed by numpydoc itself (an independent
parser), not by a regular expression of ours.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import connectome_dask

docscrape = pytest.importorskip("numpydoc.docscrape", reason="numpydoc parses the docstrings")


def _public_modules() -> list[str]:
    out = []
    for m in pkgutil.walk_packages(connectome_dask.__path__, "connectome_dask."):
        if any(part.startswith("_") for part in m.name.split(".")[1:]):
            continue
        out.append(m.name)
    return sorted(out)


def _public_callables() -> list[tuple[str, object]]:
    items = []
    for name in _public_modules():
        mod = importlib.import_module(name)
        for attr in getattr(mod, "__all__", []):
            obj = getattr(mod, attr)
            if getattr(obj, "__module__", None) != name:
                continue  # re-exported: checked where it is defined
            if inspect.isfunction(obj):
                items.append((f"{name}.{attr}", obj))
            elif inspect.isclass(obj):
                items.append((f"{name}.{attr}", obj))
                for k, v in vars(obj).items():
                    if not k.startswith("_") and inspect.isfunction(v):
                        items.append((f"{name}.{attr}.{k}", v))
    return items


CALLABLES = _public_callables()


def test_the_public_api_is_found():
    names = {q for q, _ in CALLABLES}
    # a sample of names every user meets: the walk must see them, or the rule checks nothing
    assert {"connectome_dask.aggregate.adjacency", "connectome_dask.store.reader.Connectome"} <= names
    assert len(CALLABLES) > 80


@pytest.mark.parametrize(("qualname", "obj"), CALLABLES, ids=[q for q, _ in CALLABLES])
def test_numpydoc_parameters_and_raises(qualname, obj):
    doc = docscrape.ClassDoc(obj) if inspect.isclass(obj) else docscrape.FunctionDoc(obj)
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return
    params = [p for p in sig.parameters if p not in ("self", "cls")]
    documented = set()
    for p in doc["Parameters"]:
        for n in p.name.split(","):
            documented.add(n.strip().lstrip("*"))
    missing = [p for p in params if p not in documented]
    assert not missing, f"{qualname}: parameters without a numpydoc entry: {missing}"
    try:
        src = inspect.getsource(obj if not inspect.isclass(obj) else obj.__init__)
    except (OSError, TypeError):  # generated code (a dataclass's __init__) has no source
        src = ""
    if "raise " in src:
        assert doc["Raises"], f"{qualname} raises but its docstring has no Raises section"


def _imports_of(path):
    import ast

    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, []


def test_benchmarks_use_public_api_only():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    private = []
    for path in sorted(root.glob("*.py")):
        for line, module, names in _imports_of(path):
            if not module.startswith("connectome_dask"):
                continue
            parts = module.split(".")[1:] + names
            if any(p.startswith("_") for p in parts):
                private.append(f"{path.name}:{line}: {module} {names}")
    assert not private, private


def test_tests_do_not_edit_sys_path():
    from pathlib import Path

    root = Path(__file__).resolve().parent
    hits = [
        f"{p.relative_to(root)}:{i}"
        for p in sorted(root.rglob("*.py"))
        if p.name != "test_house_rules.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "sys.path.insert" in line or "sys.path.append" in line
    ]
    assert not hits, hits
