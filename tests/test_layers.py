"""The packages import downwards only: a module may import from its own layer or any layer below it.

Bottom to top: helpers with no swarm_route imports (keys, timing, tracing, store) → core (the walk and its
stages, plain Python) → agents (the backends) → config → wiring (stages built from settings, no Ray) →
warmup → api (HTTP, no Ray) → serve (Ray) → bench → cli. A cycle between packages, or core reaching up
into Ray, fails here with the offending import named.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "swarm_route"
LAYERS = [
    {"keys", "timing", "tracing", "store"},
    {"core"},
    {"agents"},
    {"config"},
    {"wiring"},
    {"warmup"},
    {"api"},
    {"serve"},
    {"bench"},
    {"cli"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
RAY_FREE = {"core", "agents", "config", "wiring", "warmup", "api"}


def unit(module: str) -> str:
    """``swarm_route.core.route.router`` → ``core``: the top-level package or module it belongs to."""
    return module.split(".")[1]


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def test_every_module_belongs_to_a_layer():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    units -= {"__init__", "__pycache__"}
    assert units <= set(RANK), f"place these in LAYERS: {sorted(units - set(RANK))}"


def test_imports_go_down_the_layers_and_ray_stays_at_the_edge():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        here = unit("swarm_route." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        for line, module in imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
            if module.startswith("swarm_route.") and RANK[unit(module)] > RANK[here]:
                wrong.append(where)
            if here in RAY_FREE and (module == "ray" or module.startswith("ray.")):
                wrong.append(where + " (this layer runs without Ray)")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from swarm_route.serve.app import build_app\nimport ray\n")
    assert [m for _, m in imports(probe)] == ["swarm_route.serve.app", "ray"]
    assert RANK[unit("swarm_route.serve.app")] > RANK["core"]
