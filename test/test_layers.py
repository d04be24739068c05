"""The package's layers import one way only: each subpackage uses only the layers its
docstring names (the table below), nodes and the command line sit on top."""
import ast
from pathlib import Path

import aloe

PACKAGE = Path(aloe.__file__).parent

# layer -> the layers it may import (besides itself)
ALLOWED = {
    "control": set(),
    "graph": set(),
    "sim": set(),
    "learning": set(),
    "data": {"control", "graph", "sim", "learning"},
    "experiment": {"control", "graph", "sim", "learning", "data"},
    "nodes": {"control", "graph", "sim", "learning", "data"},
    "cli": {"control", "graph", "sim", "learning", "data", "experiment", "nodes"},
}


def layer_of(module: str) -> str:
    """'aloe.graph.topics' -> 'graph'; the top-level 'aloe.cli' -> 'cli'."""
    return module.split(".")[1]


def aloe_imports(path: Path) -> list:
    """(line, module) of every `import aloe.x` / `from aloe.x import ...`, wherever it sits in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "aloe" else [f"aloe.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.startswith("aloe.")]
    return found


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts != ("__init__",):
            yield path, parts[0]


def test_every_module_belongs_to_a_layer():
    layers = {layer for _, layer in modules()}
    assert layers == set(ALLOWED), f"modules outside the layer table: {sorted(layers - set(ALLOWED))}"


def test_layers_import_downwards_only():
    wrong = []
    for path, layer in modules():
        for line, module in aloe_imports(path):
            target = layer_of(module)
            if target != layer and target not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} ({layer}) imports {module} ({target})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_subpackage_docstrings_name_what_they_may_import():
    for layer, allowed in ALLOWED.items():
        init = PACKAGE / layer / "__init__.py"
        if layer == "cli":
            continue
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert docstring, f"aloe/{layer}/__init__.py has no docstring"
        for other in allowed:
            assert f"aloe.{other}" in docstring, f"aloe/{layer}/__init__.py does not say it may import aloe.{other}"


def test_the_check_sees_an_upward_import(tmp_path):
    """The parser finds imports inside functions too, where the lazy ones live."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from aloe.experiment.report import write_report\n    import aloe.nodes.policy\n")
    assert aloe_imports(source) == [(2, "aloe.experiment.report"), (3, "aloe.nodes.policy")]
