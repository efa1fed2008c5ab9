"""Settings defined once: a config dataclass field carries its default and help, and the absl
flag comes from it.

    @dataclasses.dataclass(frozen=True)
    class BackboneConfig:
        experts: int = setting(4, "MMoE: shared experts.")
        expert_units: tuple[int, ...] = setting((128, 64), "MMoE and PLE: expert widths.")

    @dataclasses.dataclass(frozen=True)
    class ModelConfig:
        preset: str = setting("vr_ndt", "Model preset.", flag="model", choices=PRESETS)
        backbone: BackboneConfig = BackboneConfig()      # nested: its fields are flags too

`define_flags(ModelConfig)` defines one flag per field that has a help, walking nested config
dataclasses; flags are named as the field (or its `flag=`), so nesting does not change flag
names (`--experts`, not `--model.backbone.experts`). `from_flags(ModelConfig)` builds the
config back from the parsed flags. A field without help (a value derived by code, such as a
seed copied from another setting) has no flag and keeps its default.

Types: bool, int, float, str (an enum with `choices`), and tuple[int | float | str, ...]
(a comma-separated list); `X | None` takes None when the flag is not given. `parse=` turns the
flag's value into the field's (e.g. "0 means None"). A value that does not convert is an
`InputError` naming the flag.

Why not ml_collections' `config_flags` (the Flax examples' choice): it names every flag by its
path in the config (`--config.model.backbone.experts=8`), which would rename every documented
flag, flagfile and script line of this project, and it is not in the pinned stack.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Callable, Iterator

from core.errors import InputError

_LIST_TYPES = {int: "integers", float: "numbers", str: "strings"}


def setting(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None,
            choices: Any = None, parse: Callable | None = None, minimum: float | None = None,
            maximum: float | None = None):
    """A dataclass field with a flag: `default`, the flag's `help` text, its name (default: the
    field's), `choices` for an enum (a sequence, or a callable giving one), `parse` to map the
    flag's value to the field's, and the bounds `minimum` and `maximum` of a number's flag
    (absl refuses a value outside them; a float flag also refuses nan and inf). Without
    `default` the flag is required."""
    metadata = {"help": help, "flag": flag, "choices": choices, "parse": parse,
                "minimum": minimum, "maximum": maximum}
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class _Leaf:
    flag: str
    field: dataclasses.Field
    kind: Any  # the field's type without None
    optional: bool
    path: tuple[str, ...]


def _split_optional(kind) -> tuple[Any, bool]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return (args[0] if len(args) == 1 else kind), len(args) < len(typing.get_args(kind))
    return kind, False


def leaves(config_class, path: tuple[str, ...] = ()) -> Iterator[_Leaf]:
    """Every flag-carrying field of `config_class` and its nested configs, in field order."""
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        kind, optional = _split_optional(hints[field.name])
        if field.metadata.get("help"):
            yield _Leaf(field.metadata.get("flag") or field.name, field, kind, optional,
                        path + (field.name,))
        elif dataclasses.is_dataclass(kind):
            yield from leaves(kind, path + (field.name,))


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def _finite_or_none(value) -> bool:
    return value is None or math.isfinite(value)


def define_flags(config_class, flag_values=None, *, skip: tuple[str, ...] = ()) -> list[str]:
    """Defines an absl flag for every setting of `config_class` (nested configs included) but
    the flags named in `skip`; returns the names of the required ones (fields without a
    default), which it marks as required. The flags are key flags of the calling module, so
    its `--helpshort` lists them."""
    import sys

    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    caller = sys._getframe(1).f_globals.get("__name__", "")
    caller = sys.argv[0] if caller == "__main__" else caller  # absl's name for the main module
    required, seen = [], set()
    for leaf in leaves(config_class):
        if leaf.flag in skip:
            continue
        if leaf.flag in seen:
            raise ValueError(f"two settings of {config_class.__name__} share the flag "
                             f"--{leaf.flag}")
        seen.add(leaf.flag)
        meta, default = leaf.field.metadata, _default(leaf.field)
        help_text = meta["help"]
        common = dict(flag_values=flag_values)
        if typing.get_origin(leaf.kind) is tuple:
            flags.DEFINE_list(leaf.flag, None if default is None else [str(v) for v in default],
                              help_text, **common)
        elif meta.get("choices") is not None:
            choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
            flags.DEFINE_enum(leaf.flag, default, list(choices), help_text, **common)
        elif leaf.kind is bool:
            flags.DEFINE_bool(leaf.flag, default, help_text, **common)
        elif leaf.kind is int:
            flags.DEFINE_integer(leaf.flag, default, help_text, lower_bound=meta.get("minimum"),
                                 upper_bound=meta.get("maximum"), **common)
        elif leaf.kind is float:
            flags.DEFINE_float(leaf.flag, default, help_text, lower_bound=meta.get("minimum"),
                               upper_bound=meta.get("maximum"), **common)
            # nan passes absl's bounds (no comparison holds) and inf is a float: a weight, a
            # rate or a threshold of either trains or labels nothing sensible, without a word.
            flags.register_validator(leaf.flag, _finite_or_none,
                                     message=f"--{leaf.flag} must be a finite number",
                                     flag_values=flag_values)
        elif leaf.kind is str:
            flags.DEFINE_string(leaf.flag, default, help_text, **common)
        else:
            raise TypeError(f"setting {'.'.join(leaf.path)}: no flag type for {leaf.kind!r}")
        flag_values.register_key_flag_for_module(caller, flag_values[leaf.flag])
        if leaf.field.default is dataclasses.MISSING and \
                leaf.field.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            required.append(leaf.flag)
    if required:
        flags.mark_flags_as_required(required, flag_values=flag_values)
    return required


def _converted(leaf: _Leaf, value):
    if value is None:
        return None
    if typing.get_origin(leaf.kind) is tuple:
        item = typing.get_args(leaf.kind)[0]
        try:
            return tuple(item(v) for v in value)
        except ValueError:
            raise InputError(f"--{leaf.flag} must be comma-separated {_LIST_TYPES[item]}, not "
                             f"{','.join(value)!r}") from None
    return value


def from_flags(config_class, flag_values=None, *, skip: tuple[str, ...] = (), **given):
    """`config_class` built from the parsed flags (flags in `skip` left at their defaults);
    `given` sets top-level fields directly (e.g. values that are not settings)."""
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values

    def build(cls, path):
        hints = typing.get_type_hints(cls)
        values = {}
        for field in dataclasses.fields(cls):
            if not path and field.name in given:
                values[field.name] = given[field.name]
                continue
            kind, _ = _split_optional(hints[field.name])
            meta = field.metadata
            if meta.get("help"):
                leaf = _Leaf(meta.get("flag") or field.name, field, kind, False, path)
                if leaf.flag in skip:
                    continue
                value = _converted(leaf, flag_values[leaf.flag].value)
                values[field.name] = meta["parse"](value) if meta.get("parse") else value
            elif dataclasses.is_dataclass(kind):
                values[field.name] = build(kind, path + (field.name,))
        return cls(**values)

    return build(config_class, ())


def from_json(config_class, data: dict):
    """`config_class` from `dataclasses.asdict` output read back from JSON (lists become tuples,
    nested configs are rebuilt; unknown keys are ignored, missing ones take their defaults)."""
    hints = typing.get_type_hints(config_class)
    values = {}
    for field in dataclasses.fields(config_class):
        if field.name not in data:
            continue
        kind, _ = _split_optional(hints[field.name])
        value = data[field.name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = from_json(kind, value)
        elif isinstance(value, list):
            value = tuple(value)
        values[field.name] = value
    return config_class(**values)


def reference_markdown(config_class, *, skip: tuple[str, ...] = ()) -> str:
    """A Markdown table of every flag of `config_class` (nested configs included, `skip`
    left out): flag, default, help, and the config field it sets. docs/flags.md is made of
    these tables (scripts/flag_reference.py), so the documented flags are the defined ones."""

    def shown(leaf):
        default = _default(leaf.field)
        if default is None:
            return "—" if leaf.field.default is not dataclasses.MISSING else "required"
        if isinstance(default, tuple):
            return "`" + ",".join(str(v) for v in default) + "`" if default else "(empty)"
        if isinstance(default, bool):
            return "`true`" if default else "`false`"
        return f"`{default}`"

    def cell(text):
        return " ".join(str(text).split()).replace("|", "\\|")

    rows = ["| flag | default | what it sets |", "|---|---|---|"]
    for leaf in leaves(config_class):
        if leaf.flag in skip:
            continue
        meta = leaf.field.metadata
        help_text = meta["help"]
        if meta.get("choices") is not None:
            choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
            help_text += " One of: " + ", ".join(str(c) for c in choices) + "."
        bounds = [f"{sign} {meta[key]:,}" for key, sign in (("minimum", "≥"), ("maximum", "≤"))
                  if meta.get(key) is not None]
        if bounds:
            help_text += " (" + ", ".join(bounds) + ")"
        if leaf.kind is float:
            help_text += " (finite)"
        rows.append(f"| `--{leaf.flag}` | {cell(shown(leaf))} | {cell(help_text)} "
                    f"(`{'.'.join(leaf.path)}`) |")
    return "\n".join(rows) + "\n"
