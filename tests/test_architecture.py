"""The package structure: imports only go down the flow, and no module imports itself back.

The stages, in the order of the flow (README, Layout): the foundation `core`, then simulate,
validate, stats, label, training (`ranking`), export, scoring, online, report. A module may
import its own stage and earlier ones, never a later one, and the import graph has no cycle.
Every import counts, including those inside functions (a deferred import is still a
dependency).
"""

import ast
import os

from conftest import REPO

STAGES = ("core", "pipelines.simulate", "pipelines.validate", "pipelines.stats",
          "pipelines.label", "ranking", "export", "pipelines.score", "online", "report")
PACKAGES = ("core", "pipelines", "ranking", "export", "online", "report")


def project_modules() -> dict[str, str]:
    """{dotted module name: path} of every module of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                    modules[dotted.removesuffix(".__init__")] = path
    return modules


def imports_of(path: str, module: str, known: set[str]) -> set[str]:
    """The project modules `module` imports (at any depth of its code)."""
    tree = ast.parse(open(path).read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            # `from a.b import c`: c may be a module of a.b or a name in it.
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def stage_of(module: str) -> int:
    return max(i for i, stage in enumerate(STAGES)
               if module == stage or module.startswith(stage + "."))


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {m: imports_of(p, m, known) for m, p in modules.items()}


def test_the_stages_cover_every_package():
    modules = project_modules()
    assert {m.split(".")[0] for m in modules} == set(PACKAGES)
    for module in modules:
        if module != "pipelines":  # the package's own docstring module
            stage_of(module)


def test_imports_only_go_down_the_flow():
    later = [(m, i) for m, imported in graph().items() if m != "pipelines"
             for i in imported if i != "pipelines" and stage_of(i) > stage_of(m)]
    assert later == [], "modules importing a later stage: " + ", ".join(
        f"{m} -> {i}" for m, i in later)


def test_the_import_graph_has_no_cycle():
    edges = graph()
    # Packages import their parent package implicitly; a package's __init__ importing `core`
    # (to select Keras 2) is not a cycle through its modules.
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_walker_sees_deferred_imports(tmp_path):
    """A reference for the walker: an import inside a function is an edge."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from pipelines.score import scoring_beam\n")
    known = {"pipelines.score.scoring_beam", "pipelines.score"}
    assert imports_of(str(source), "pipelines.score.scoring", known) == {
        "pipelines.score.scoring_beam", "pipelines.score"}
