"""Outputs that appear whole or not at all: write into a temporary sibling, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from typing import Callable, Iterator, Mapping, Sequence

from core.errors import InputError
from core.log_files import is_url


def _refuse_long_names(path: str, what: str) -> None:
    """InputError when a name on `path` is longer than NAME_MAX bytes: the output's rename
    would fail at the end, after all the work."""
    for name in os.path.abspath(path).split(os.sep):
        if len(os.fsencode(name)) > NAME_MAX:
            raise InputError(f"{what} {path}: the name {name[:40]}... has "
                             f"{len(os.fsencode(name))} bytes, more than the file system's "
                             f"{NAME_MAX}; give a shorter one")


def _refuse_url(path: str, what: str) -> None:
    """An output at a URL would be made a local folder named "gs:" by `os.path`: refused (the
    commands refuse such flags first: `core.log_files.url_flag_problem`)."""
    if is_url(path):
        raise InputError(f"{what} {path} is a URL: outputs are written with local file "
                         "operations (a temporary sibling, then a rename); give a local or "
                         "mounted path")


def _is_empty_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.listdir(path)


def file_starts_with(path: str, text: str) -> bool:
    """Whether file `path` begins with `text` (a title this project writes)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(len(text)) == text
    except (OSError, UnicodeDecodeError):
        return False


def json_has(path: str, key: str) -> bool:
    """Whether file `path` is a JSON object holding `key` (a record this project writes)."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(record, dict) and key in record


def earlier_output(*, names: Sequence[str] = (), patterns: Sequence[str] = (),
                   markers: Mapping[str, str] = {}, titles: Mapping[str, str] = {},
                   folders: Mapping[str, str] = {},
                   check: Callable[[str], bool] | None = None) -> Callable[[str], bool]:
    """A `may_replace` for `atomic_directory`: true for an empty directory or one holding an
    earlier output of the job alone. Every entry is one of `names`, a full match of one of
    `patterns` (regular expressions) or one of `folders` ({folder: a pattern each of its
    entries fully matches}); each file of `markers` ({JSON file: a key it holds}) and of
    `titles` ({file: the text it begins with}) is present and as the job writes it; and
    `check(path)` holds. A directory with anything else in it (a person's files beside an
    output or inside its folders, or a file of the output's name of their own) is not
    replaced."""
    compiled = [re.compile(p) for p in patterns]
    inside = {folder: re.compile(p) for folder, p in folders.items()}

    def belongs(path: str, entry: str) -> bool:
        if entry in inside:
            folder = os.path.join(path, entry)
            return os.path.isdir(folder) and all(inside[entry].fullmatch(e)
                                                 for e in os.listdir(folder))
        return (entry in names or entry in markers or entry in titles
                or any(c.fullmatch(entry) for c in compiled))

    def may_replace(path: str) -> bool:
        entries = os.listdir(path)
        if not entries:
            return True
        return (all(belongs(path, e) for e in entries)
                and all(json_has(os.path.join(path, m), key) for m, key in markers.items())
                and all(file_starts_with(os.path.join(path, f), text)
                        for f, text in titles.items())
                and (check is None or check(path)))

    return may_replace


def _make_parents(directory: str) -> list[str]:
    """Makes `directory` and its missing parents; returns those it made, deepest first."""
    made, path = [], directory
    while path and not os.path.exists(path):
        made.append(path)
        path = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    return made


def _remove_made(made: list[str]) -> None:
    """Removes the directories `_make_parents` made, if still empty: a failed job leaves no
    trace."""
    for path in made:
        with contextlib.suppress(OSError):
            os.rmdir(path)


def check_output_directory(target: str, *, may_replace: Callable[[str], bool] = _is_empty_dir,
                           what: str = "output directory", inputs: Sequence[str] = ()) -> str:
    """`atomic_directory`'s checks of `target` alone, for a job to make before a long step
    that precedes its output (e.g. a --schema check); returns `target` absolute."""
    _refuse_url(target, what)
    _refuse_long_names(target, what)
    target = os.path.abspath(target)
    inside = os.path.realpath(target) + os.sep
    held = [p for p in inputs if not is_url(p) and os.path.realpath(p).startswith(inside)]
    if held:
        raise InputError(f"{what} {target} holds the input {held[0]}"
                         f"{f' and {len(held) - 1:,} more' if len(held) > 1 else ''}: "
                         "writing the output there would replace the input being read; "
                         "choose another path")
    if os.path.exists(target) and not (os.path.isdir(target) and may_replace(target)):
        raise InputError(f"{what} {target} exists and holds something else; "
                         "refusing to overwrite it (choose another path or remove it)")
    return target


@contextlib.contextmanager
def atomic_directory(target: str, *, may_replace: Callable[[str], bool] = _is_empty_dir,
                     what: str = "output directory", inputs: Sequence[str] = ()
                     ) -> Iterator[str]:
    """Yields a temporary directory beside `target`; on success it becomes `target`.

    An existing `target` is replaced only if `may_replace(target)` holds (by default: it is
    empty); otherwise InputError is raised before any work starts. On any exception the
    temporary directory is removed and `target` is left as it was. `inputs` (the job's input
    files): a `target` that holds one of them is refused, as replacing it would delete it.
    """
    target = check_output_directory(target, may_replace=may_replace, what=what, inputs=inputs)
    parent = os.path.dirname(target)
    made = _make_parents(parent)
    tmp = tempfile.mkdtemp(prefix=temporary_prefix(target), dir=parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_made(made)
        raise
    os.chmod(tmp, 0o755)
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=temporary_prefix(target, "old"), dir=parent)
        os.rename(target, os.path.join(old, "previous"))
    os.rename(tmp, target)
    if old:
        shutil.rmtree(old, ignore_errors=True)


# A file name's longest on Linux file systems (ext4, xfs: NAME_MAX), and what a temporary
# sibling adds to the name it is made for: a dot, ".tmp-" and tempfile's 8 characters.
NAME_MAX, _TEMPORARY_CHARACTERS = 255, 14


def temporary_prefix(path: str, kind: str = "tmp") -> str:
    """The prefix of `path`'s hidden temporary sibling, `.NAME.tmp-` (`kind` "old": `.NAME.old-`),
    its NAME cut so that the sibling's name stays within NAME_MAX: a legal name of 242 to 255
    characters could not be written otherwise."""
    name = os.fsencode(os.path.basename(path))[:NAME_MAX - _TEMPORARY_CHARACTERS]
    return f".{name.decode(errors='ignore')}.{kind}-"  # (a character cut in two is dropped)


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "w", **open_kwargs) -> Iterator:
    """Opens a temporary file beside `path`; on success it is renamed onto `path`. A symbolic
    link to a regular file is followed (its target is replaced). Refused (InputError), since a
    rename would replace what they are: a path that exists and is not a regular file (a device,
    a pipe), a link to nothing, and the streams under /dev and /proc (/dev/stdout: the tool
    prints to standard output itself)."""
    _refuse_url(path, "output file")
    _refuse_long_names(path, "output file")
    given = path
    hop, hops = os.path.abspath(path), []
    while os.path.islink(hop) and len(hops) < 40:  # every link on the way, /dev/stdout's too
        hops.append(hop)
        hop = os.path.join(os.path.dirname(hop), os.readlink(hop))
    path = os.path.realpath(path)
    if any(p.startswith(("/dev/", "/proc/")) and not p.startswith("/dev/shm/")
           for p in hops + [hop, path]):  # (/dev/shm holds files)
        raise InputError(f"{given} is a device or a process's stream, not a file to write "
                         "(what the tool prints goes to standard output already)")
    if os.path.islink(given) and not os.path.exists(given):
        raise InputError(f"{given} is a symbolic link to nothing; name a file to write")
    if os.path.exists(path) and not os.path.isfile(path):
        raise InputError(f"{path} exists and is not a regular file; refusing to replace it "
                         "(name a file to write)")
    made = _make_parents(os.path.dirname(path))
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), dir=os.path.dirname(path))
    os.close(fd)
    try:
        with open(tmp, mode, **open_kwargs) as handle:
            yield handle
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        _remove_made(made)
        raise


def read_json_if_present(path: str):
    """The JSON content of `path` (an output written whole, as above), or None when there is
    no such file (a directory from before it, a step not reached yet)."""
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)
