"""core.settings: flags made from config dataclasses, and configs made back from flags."""

import dataclasses
import os

import pytest
from absl import flags

from core.errors import InputError
from core.settings import define_flags, from_flags, from_json, setting

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Inner:
    widths: tuple[int, ...] = setting((8, 4), "Widths.", flag="inner_widths")
    rate: float = setting(0.5, "A rate.")
    derived: int = 3  # no help: not a flag


@dataclasses.dataclass(frozen=True)
class Outer:
    path: str = setting(help="Required path.")
    kind: str = setting("a", "An enum.", choices=("a", "b"))
    on: bool = setting(False, "A switch.")
    count: int | None = setting(None, "Optional count.")
    std: float | None = setting(1e-4, "0 or less means None.",
                                parse=lambda v: v if v and v > 0 else None)
    inner: Inner = Inner()


def parsed(*argv):
    values = flags.FlagValues()
    required = define_flags(Outer, values)
    values(["prog", *argv])
    return values, required


def test_every_setting_is_a_flag_named_as_its_field_or_flag():
    values, required = parsed("--path=x")
    assert required == ["path"]
    assert {"path", "kind", "on", "count", "std", "inner_widths", "rate"} <= set(values)
    assert "derived" not in values and "widths" not in values
    assert values["kind"].help.endswith("An enum.") and values["inner_widths"].default == ["8", "4"]


def test_flags_build_the_nested_config_back():
    values, _ = parsed("--path=x", "--kind=b", "--on", "--count=7", "--std=0",
                       "--inner_widths=16,2", "--rate=0.25")
    config = from_flags(Outer, values)
    assert config == Outer(path="x", kind="b", on=True, count=7, std=None,
                           inner=Inner(widths=(16, 2), rate=0.25))
    defaults = from_flags(Outer, parsed("--path=y")[0])
    assert defaults == Outer(path="y")  # unchanged flags give the dataclass defaults


def test_a_list_that_does_not_convert_names_its_flag():
    values, _ = parsed("--path=x", "--inner_widths=16,wide")
    with pytest.raises(InputError, match="--inner_widths must be comma-separated integers"):
        from_flags(Outer, values)


def test_a_bad_enum_value_is_refused_by_absl():
    with pytest.raises(flags.IllegalFlagValueError):
        parsed("--path=x", "--kind=c")


def test_bounds_and_finite_floats_are_absls_to_refuse():
    """A setting's minimum and maximum bound its flag; a float flag refuses nan and inf, which
    pass absl's bounds (no comparison holds for nan) and trained or labelled nothing sensible
    without a word (--learning_rate=inf, --alpha=nan) before 2026-12-07."""
    @dataclasses.dataclass(frozen=True)
    class Bounded:
        every: int = setting(500, "Steps.", minimum=1)
        seed: int = setting(0, "Seed.", minimum=0, maximum=2**32 - 1)
        weight: float = setting(1.0, "A weight.", minimum=0)
        rate: float | None = setting(None, "A rate.")

    def parse(*argv):
        values = flags.FlagValues()
        define_flags(Bounded, values)
        values(["prog", *argv])
        return from_flags(Bounded, values)

    assert parse("--every=1", "--seed=4294967295", "--weight=0", "--rate=1e-3") == Bounded(
        1, 2**32 - 1, 0.0, 1e-3)
    assert parse().rate is None
    for argv in (["--every=0"], ["--seed=-1"], ["--seed=4294967296"], ["--weight=-0.5"],
                 ["--weight=nan"], ["--weight=inf"], ["--rate=nan"], ["--rate=-inf"]):
        with pytest.raises(flags.IllegalFlagValueError):
            parse(*argv)


def test_two_settings_with_one_flag_name_are_refused():
    @dataclasses.dataclass(frozen=True)
    class Clash:
        a: Inner = Inner()
        rate: float = setting(1.0, "Clashes with Inner.rate.")

    with pytest.raises(ValueError, match="share the flag --rate"):
        define_flags(Clash, flags.FlagValues())


def test_from_json_reads_asdict_back():
    config = Outer(path="p", count=2, inner=Inner(widths=(3,), rate=0.1, derived=9))
    as_json = {"path": "p", "kind": "a", "on": False, "count": 2, "std": 1e-4,
               "inner": {"widths": [3], "rate": 0.1, "derived": 9}, "unknown": 1}
    assert dataclasses.asdict(config)["inner"]["widths"] == (3,)
    assert from_json(Outer, as_json) == config


def test_the_flag_reference_lists_exactly_the_defined_flags():
    """docs/flags.md is generated from the configs; a setting added without regenerating it
    (python scripts/flag_reference.py) fails here. Every flag ranking.train defines from its
    config has a row, and no row names a flag that does not exist."""
    import importlib.util
    import re

    from core.settings import leaves
    from ranking.training import TrainConfig

    spec = importlib.util.spec_from_file_location(
        "flag_reference", os.path.join(REPO, "scripts", "flag_reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(module.TARGET) as handle:
        assert handle.read() == module.render(), "docs/flags.md is stale"
    section = module.render().split("## `python -m ranking.train`")[1].split("\n## ")[0]
    documented = re.findall(r"^\| `--([a-z0-9_]+)` \|", section, flags=re.M)
    assert documented == [leaf.flag for leaf in leaves(TrainConfig)]


def test_usage_lines_in_docstrings_keep_their_line_breaks():
    """A command's module docstring is its --help text (absl prints it): a shell line
    continuation written there as a single backslash joins the lines in the string, so --help
    showed "...csv.gz'         --eval=...". Every docstring of the project's packages, benchmarks
    and scripts holds at least as many line breaks as it spans source lines (written as "\\\\",
    the backslash is shown and the break kept)."""
    import ast
    import glob

    folders = ("core", "pipelines", "ranking", "export", "online", "report", "benchmarks",
               "scripts")
    joined = []
    for folder in folders:
        for path in glob.glob(os.path.join(REPO, folder, "**", "*.py"), recursive=True):
            tree = ast.parse(open(path).read(), path)
            for node in [tree] + [n for n in ast.walk(tree) if isinstance(
                    n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]:
                body = node.body[:1]
                if body and isinstance(body[0], ast.Expr) and isinstance(
                        body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                    doc = body[0].value
                    if doc.value.count("\n") < doc.end_lineno - doc.lineno:
                        joined.append(f"{os.path.relpath(path, REPO)}:{doc.lineno}")
    assert joined == []
