"""The shape of the house (ARCHITECTURE.md): imports only go down, no circles, no borrowed private names, small
modules and functions. Every import counts, including those inside functions."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "raylayers"

# Layers, bottom to top: a module may import its own layer and the layers below it, never above.
LAYERS = [
    # 0: facts and plumbing everyone shares
    ("raylayers.errors", "raylayers.interrupts", "raylayers.paths", "raylayers.files", "raylayers.layers",
     "raylayers.prompts", "raylayers.timings",
     "raylayers.evaluate.schema", "raylayers.config", "raylayers.configs"),
    # 1: leaves that know one outside library each
    ("raylayers.tokenizer", "raylayers.image_source", "raylayers.feature_cache", "raylayers.encoders",
     "raylayers.connectors", "raylayers.plots", "raylayers.world", "raylayers.ray_session", "raylayers.data",
     "raylayers.ray_controller"),
    # 2: the tower's features and its similarity
    ("raylayers.features", "raylayers.lrs", "raylayers.sample_cache"),
    # 3: the model
    ("raylayers.model",),
    # 4: what runs a model
    ("raylayers.train", "raylayers.evaluate", "raylayers.export"),
    # 5: what runs those
    ("raylayers.search", "raylayers.pretrain"),
    # 6: the command line
    ("raylayers.cli", "raylayers.resume_line", "raylayers.demo", "raylayers.study"),
]

# Functions allowed over the length limit, each with its reason. Keep it short.
LONG_FUNCTIONS: dict[str, str] = {}
MAX_MODULE_LINES = 420  # "about 400"
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(name: str) -> int:
    if name == "raylayers":  # the package's own __init__ sits on top
        return len(LAYERS) - 1
    for rank, prefixes in enumerate(LAYERS):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return rank
    raise AssertionError(f"{name} is in no layer of tests/test_architecture.py: add it where it belongs")


def imports_of(path: Path, known: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(imported module, imported name or '', line) for every raylayers import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names if alias.name.startswith("raylayers")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("raylayers"):
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:  # `from raylayers.x import y` where y is a module
                    found.append((submodule, "", node.lineno))
                else:
                    found.append((node.module, alias.name, node.lineno))
    return found


def test_imports_only_go_down_and_take_no_private_name():
    known = modules()
    problems = []
    for name, path in known.items():
        for target, imported, line in imports_of(path, known):
            if target not in known:
                problems.append(f"{path.name}:{line}: {target} is not a module")
            elif layer_of(target) > layer_of(name):
                problems.append(f"{name}:{line} imports {target}, a layer above it")
            if imported.startswith("_") and target != name:
                problems.append(f"{name}:{line} imports the private name {target}.{imported}")
    assert not problems, "\n".join(problems)


def test_no_import_circles():
    known = modules()
    graph = {name: {target for target, _, _ in imports_of(path, known) if target in known and target != name}
             for name, path in known.items()}
    package_of = {name: name.rsplit(".", 1)[0] for name in known}
    for name in graph:  # a package's __init__ re-exporting its own modules is not a circle through them
        graph[name] = {t for t in graph[name] if not (name == package_of.get(t) and known[name].name == "__init__.py")}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                raise AssertionError("import circle: " + " -> ".join(trail[trail.index(target):] + [target]))
            if target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_modules_and_functions_are_small():
    problems = []
    for name, path in modules().items():
        source = path.read_text()
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            problems.append(f"{name}: {lines} lines (limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                key = f"{name}.{node.name}"
                if length > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS:
                    problems.append(f"{key}: {length} lines (limit {MAX_FUNCTION_LINES})")
    assert not problems, "\n".join(problems)


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)
