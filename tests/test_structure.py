"""The structure rules of the code base: no import circles, and one way from advlens to defenses.

The import graph is read with ``ast`` from every module of advlens, defenses and dashboard, with
every import statement counted, also those inside functions and under ``TYPE_CHECKING``: a lazy
import still ties two modules together. ``from pkg import name`` points at ``pkg.name`` when that is
a module of the tree, else at ``pkg`` (its ``__init__``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("advlens", "defenses", "dashboard")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            anchor = base[: len(base) - (node.level - 1)] if node.level else []
            mod = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # import a.b.c of a non-module name: its nearest module
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert len(graph) > 80  # the whole tree was read
    circles = import_circles(graph)
    detail = "\n".join(
        " <-> ".join(c) + "\n    " + "; ".join(f"{a} -> {b}" for a in c for b in sorted(graph[a] & set(c)))
        for c in circles
    )
    assert not circles, "import circles:\n" + detail


def test_the_circle_finder_finds_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_circles(graph) == [["a", "b", "c"]]


def test_only_the_plugin_loader_reaches_defenses_statically():
    graph = import_graph()
    reaching = sorted(
        m for m, deps in graph.items() if m.startswith("advlens") and any(d.startswith("defenses") for d in deps)
    )
    assert reaching == [], reaching  # the loader names its plugins by entry point, not by import
    text = [
        p
        for p in (ROOT / "advlens").rglob("*.py")
        if "import defenses" in p.read_text() or "from defenses" in p.read_text()
    ]
    assert [p.relative_to(ROOT).as_posix() for p in text] in ([], ["advlens/plugins.py"])


RUNTIME_CHECK = r"""
import sys, traceback
importers = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if (name == "defenses" or name.startswith("defenses.")) and name not in importers:
            frames = [f for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename]
            importers[name] = frames[-1].filename if frames else "?"
        return None

sys.meta_path.insert(0, Watch())
import advlens.zoo, advlens.data, advlens.cli, advlens.attacks, advlens.attribution
assert not any(m.startswith("defenses") for m in sys.modules), "defenses imported before any registry asked"
from advlens.models import build_model, list_architectures
from advlens.models.registry import get_architecture
from advlens.training.config import TrainConfig
from advlens.training.objectives import list_objectives
get_architecture("small_cnn_denoise")
for arch in list_architectures():
    if arch != "efficientnet_lite0":
        build_model(arch)
for cls in list_objectives():
    cls({}, TrainConfig(objective=cls.name))
outside = {n: f for n, f in importers.items() if "/defenses/" not in f.replace("\\", "/")}
print(sorted(set(outside.values())))
assert len(list_objectives()) >= 10
assert outside and all(f.replace("\\", "/").endswith("advlens/plugins.py") or "importlib/metadata" in f
                       for f in outside.values()), outside
"""


def test_only_the_plugin_loader_imports_defenses_at_run_time():
    """After every architecture and objective is built, ``defenses`` was imported by the loader only."""
    out = subprocess.run([sys.executable, "-c", RUNTIME_CHECK], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


# The layers, lowest first. A module may import modules of its own layer or of lower layers, never of
# a higher one. A module's layer is the first rule whose prefix names it (the longest prefix wins).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "basics",
        (
            "advlens",
            "advlens.paths",
            "advlens.device",
            "advlens.params",
            "advlens.safe_files",
            "advlens.safe_json",
            "advlens.budget",
            "advlens.registry",
            "advlens.intervals",  # Clopper-Pearson intervals: statistics every layer reports
        ),
    ),
    (
        "engine",
        (
            "advlens.data",
            "advlens.models",
            "advlens.attacks",
            "advlens.attribution",
            "advlens.transforms",
            "advlens.predict",
            "advlens.attack_cost",  # times a model, under its lock, to fit an attack's preset
            "advlens.threads",  # the CPU's turns: it releases the models' locks (advlens.models.modes)
        ),
    ),
    ("zoo", ("advlens.zoo",)),
    ("jobs", ("advlens.jobs",)),
    (
        "features",
        (
            "advlens.training",
            "advlens.evaluation",
            "advlens.perturbations",
            "advlens.smoothing",
            "advlens.corruptions",
            "advlens.certify",
            "advlens.attention_study",
            "advlens.showcase",
        ),
    ),
    ("cli", ("advlens.cli", "advlens.__main__")),
    ("plugins", ("advlens.plugins", "defenses")),
    ("dashboard", ("dashboard",)),
]
# The one allowed reach upwards: the plugin loader names its plugins (defenses) by entry point and is
# asked for them by the registries of the engine (architectures, objectives).
ALLOWED_UP = {"advlens.plugins"}


def layer_of(module: str) -> int | None:
    best, found = -1, None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, found = len(p), rank
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for src, deps in sorted(graph.items()):
        a = layer_of(src)
        for dst in sorted(deps):
            b = layer_of(dst)
            if a is None or b is None or dst in ALLOWED_UP:
                continue
            if b > a:
                out.append(f"{src} ({LAYERS[a][0]}) -> {dst} ({LAYERS[b][0]})")
    return out


def test_every_module_has_a_layer():
    missing = sorted(m for m in import_graph() if layer_of(m) is None)
    assert not missing, "modules with no layer in LAYERS: " + ", ".join(missing)


def test_no_module_imports_a_higher_layer():
    edges = upward_imports(import_graph())
    assert not edges, f"{len(edges)} upward import(s):\n" + "\n".join(edges)


def test_the_layer_rule_finds_upward_imports():
    graph = {"advlens.zoo": {"advlens.jobs.store", "advlens.models"}, "advlens.jobs.store": {"advlens.paths"}}
    assert upward_imports(graph) == ["advlens.zoo (zoo) -> advlens.jobs.store (jobs)"]
    assert layer_of("advlens.jobs") == 3 and layer_of("advlens.models.robustbench.store") == 1
