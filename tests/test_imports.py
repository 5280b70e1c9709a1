"""The package's import graph has no cycle, counting imports inside functions too, and each
third-party library the style guide names has exactly one importer."""

import ast
from pathlib import Path

import imagehost

PACKAGE = Path(imagehost.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(modules of the package, top-level names of other packages) that `path` imports,
    anywhere in the file."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (ours if alias.name.startswith("imagehost") else theirs).add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                target = node.module or ""
                if not target.startswith("imagehost"):
                    theirs.add(target)
                    continue
            else:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            ours.add(target)
            # `from . import api` imports the module imagehost.api
            for alias in node.names:
                ours.add(f"{target}.{alias.name}")
    return ours, {t.split(".")[0] for t in theirs}


def graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        ours, _ = _imports(path)
        # a package's own __init__ runs first whenever one of its modules is imported
        edges[name] = {m for m in ours if m in modules and m != name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_checker_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    edges = graph()
    assert "imagehost.server" in edges and "imagehost.api" in edges
    assert find_cycle(edges) is None, " → ".join(find_cycle(edges))


def test_server_knows_neither_api_nor_front():
    edges = graph()
    assert not edges["imagehost.server"] & {"imagehost.api", "imagehost.front"}


def test_each_library_has_one_importer():
    importers: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for lib in _imports(path)[1]:
            importers.setdefault(lib, set()).add(_module_name(path))
    assert importers["PIL"] == importers["pillow_heif"] == {"imagehost.images"}
    assert importers["python_multipart"] == {"imagehost.uploads"}
    assert importers["dotenv"] == {"imagehost.config"}
    assert importers["prometheus_client"] == {"imagehost.metrics"}
    assert importers["isodate"] == {"imagehost.expiry"}
    assert importers["http"] == {"imagehost.server"}
    assert importers["obstore"] == {"imagehost.store.s3"}
    assert importers["psycopg"] == importers["psycopg_pool"] == {"imagehost.catalog.postgres"}
