"""Log files (SPEC §2): `LogFile` (a path, its format and compression), `expand_inputs` (comma-
separated globs to classified `LogFile`s), opening them as bytes or UTF-8 text, the check of a
gzip file's whole stream (`gzip_damage`), and the reason a TFRecord file cannot be read
(`tfrecord_damage`). The columns and types of their contents are
`core.log_schema`'s, inferred by `core.schema_inference`.

Local paths are read through the os module; URLs (gs://, ram://, and what other file systems
are registered) through TensorFlow's file systems, so Beam workers on Dataflow, Flink or Spark
read buckets. Only log inputs may be URLs (`URL_FLAGS`, `url_flag_problem`): the project's
outputs and artifacts are written and read with local file operations (atomic renames, locks).
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import io
import os
import re
import threading
import zlib
from typing import Sequence

from core.errors import InputError, tf_reason

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.gzip")
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfr", ".tfrecord.gz", ".tfrecords.gz",
                     ".tfrecord.gzip", ".tfr.gz")


@dataclasses.dataclass(frozen=True)
class LogFile:
    path: str
    format: str  # "csv" or "tfrecord"
    gzip: bool


def files_text(files: Sequence[LogFile], shown: int = 3) -> str:
    """The first `shown` paths of `files`, comma-separated, and how many more there are (for
    errors about a whole input)."""
    text = ", ".join(f.path for f in files[:shown])
    return text + (f" and {len(files) - shown:,} more" if len(files) > shown else "")


# The flags that take log globs: the only ones that may name URLs.
URL_FLAGS = ("input", "train", "eval", "validation", "gate_logs")


def is_url(path: str) -> bool:
    """Whether `path` is a URL (scheme://...) rather than a local or mounted path."""
    return "://" in path


def absolute_globs(patterns: str | None, directory: str | None = None) -> str | None:
    """Comma-separated globs with each local one made absolute (URLs as they are): a relative
    one joined to `directory` (default: the working directory), for globs read from another
    working directory than the one they were given in."""
    if patterns is None:
        return None
    return ",".join(p.strip() if is_url(p.strip()) else
                    os.path.abspath(os.path.join(directory or os.getcwd(), p.strip()))
                    for p in patterns.split(",") if p.strip())


def url_flag_problem(values) -> str | None:
    """Why a command's flags cannot run, for a URL given to a flag other than `URL_FLAGS`
    (`values`: {flag name: value}, a value a string or a list of strings); else None. Outputs,
    stats artifacts, model directories and exports are read and written with local file
    operations (atomic renames, flock), which an object store lacks: given a URL, `os.path`
    would make it a local folder named "gs:" and the job would write there without a word."""
    for name, value in values.items():
        if name in URL_FLAGS:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str) and is_url(item):  # (NAME=PATH items included)
                return (f"--{name}={','.join(value) if isinstance(value, (list, tuple)) else value}"
                        ": a URL; only the logs may be URLs (--" + ", --".join(URL_FLAGS)
                        + "): outputs, stats artifacts, model directories and exports are "
                        "written and read with local file operations (atomic renames, locks): "
                        "give a local path or a mounted one (a bucket mounted with gcsfuse) "
                        "and copy the result to the bucket afterwards")
    return None


# The flags that name where a tool writes (each tool has some of them).
OUTPUT_FLAGS = ("output_dir", "output", "model_dir", "export_base")


def path_flag_problem(given) -> str | None:
    """Why flags given on the command line cannot be paths (`given`: {flag name: value} of the
    flags given, a value a string or a list of strings), or None: a value starting with `~`,
    which a shell expands only at a word's start (`--output_dir=~/out` made a directory named
    "~" in the working directory), or an empty output path (taken as the working directory)."""
    for name, value in given.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if not isinstance(item, str):
                continue
            if any(part.strip().startswith("~") for part in item.split(",")):
                return (f"--{name}={item}: a shell expands ~ only at the start of a word, not "
                        f"after '=': write --{name} ~/... (a space, no '=') or $HOME/...")
        if name in OUTPUT_FLAGS and isinstance(value, str) and not value.strip():
            return f"--{name} is empty: name the output's path (or leave the flag out)"
    return None


def _isdir(path: str) -> bool:
    if is_url(path):
        import tensorflow as tf

        return tf.io.gfile.isdir(path)
    return os.path.isdir(path)


def _url_glob(pattern: str) -> list[str]:
    """tf.io.gfile.glob of a URL, its failures as InputErrors: a scheme TensorFlow has no file
    system for (this TensorFlow has gs://; hdfs://, s3:// and az:// are tensorflow-io's, which
    the project does not install), or a listing refused (credentials, a missing bucket)."""
    import tensorflow as tf

    try:
        return sorted(tf.io.gfile.glob(pattern))
    except tf.errors.UnimplementedError:
        scheme = pattern.split("://", 1)[0]
        raise InputError(f"TensorFlow here has no file system for {scheme}:// URLs (it reads "
                         "local paths and gs://; hdfs://, s3:// and az:// need tensorflow-io's "
                         "file systems, not installed with this project): copy the logs to a "
                         "local or mounted path", file=pattern) from None
    except tf.errors.OpError as error:
        raise InputError(f"cannot list {pattern}: {tf_reason(error.message)}") from None


def _glob(pattern: str) -> list[str]:
    """The files `pattern` matches. InputError when it matches a directory too (a Spark or
    Hive output `hour=15.csv/part-00000.csv.gz`): its rows would be left out without a word."""
    if is_url(pattern):
        import tensorflow as tf

        matches = _url_glob(pattern)
        directories = [p for p in matches if tf.io.gfile.isdir(p)]
    else:
        matches = sorted(glob.glob(pattern))
        directories = [p for p in matches if os.path.isdir(p)]
    if directories:
        shown = directories[0].rstrip("/")
        raise InputError(f"{pattern} matches {len(directories):,} director"
                         f"{'y' if len(directories) == 1 else 'ies'} ({shown}"
                         f"{', ...' if len(directories) > 1 else ''}), whose files it would leave "
                         f"out; give a glob of the files in them ({shown}/*), or one that "
                         "matches files only")
    if is_url(pattern):
        return matches
    return matches or ([pattern] if os.path.isfile(pattern) else [])


def file_size(path: str) -> int:
    if is_url(path):
        import tensorflow as tf

        return tf.io.gfile.stat(path).length
    return os.path.getsize(path)


class _FileSystemFile(io.RawIOBase):
    """A file of TensorFlow's file systems (`tf.io.gfile.GFile`) as a raw binary stream: a
    GFile is not an `io` object, so `io.TextIOWrapper` (CSV text: the schema's sample, the
    diagnosis of a bad line) could not read it, and a plain CSV log at a URL failed there."""

    def __init__(self, path: str):
        import tensorflow as tf

        self._file = tf.io.gfile.GFile(path, "rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._file.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def open_binary(path: str) -> io.BufferedIOBase:
    """The file at `path` (a local path or a URL of TensorFlow's file systems) as bytes."""
    if is_url(path):
        return io.BufferedReader(_FileSystemFile(path), 1 << 20)
    return open(path, "rb")


def _readable(path: str) -> bool:
    return is_url(path) or os.access(path, os.R_OK)


def expand_inputs(patterns: str | Sequence[str]) -> list[LogFile]:
    """Files matched by comma-separated globs, sorted within each glob, duplicates removed (a
    local file however spelled: `a.csv` and `./a.csv`, a relative and an absolute path or a
    symbolic link are one file, read once under its first spelling).

    Raises InputError for a glob matching nothing, a directory, an unreadable file or a mix of
    CSV and TFRecord files.
    """
    if isinstance(patterns, str):
        patterns = [p for p in patterns.split(",") if p.strip()]
    if not patterns:
        raise InputError("no input given (expected a file or glob of log files)")
    files, seen = [], set()
    for pattern in patterns:
        pattern = pattern.strip()
        if _isdir(pattern):
            raise InputError(f"{pattern} is a directory; expected log files "
                             f"(a glob such as {pattern.rstrip('/')}/*.csv.gz)")
        matches = _glob(pattern)
        if glob.has_magic(pattern):
            # A job's marker a glob of its output directory matches (Spark's and Hadoop's
            # `_SUCCESS`, empty): no rows, and not a log of either format.
            matches = [p for p in matches if not _is_empty_marker(p)]
        if not matches:
            raise InputError(f"no file matches {pattern}")
        for path in matches:
            # Read twice, a file would count its rows and clicks twice in the statistics (rule
            # T2's daily clicks, T3's items), and be trained on or scored twice.
            key = path if is_url(path) else os.path.realpath(path)
            if key in seen:
                continue
            seen.add(key)
            if not is_url(path) and os.path.islink(path) and not os.path.exists(path):
                raise InputError(f"is a symbolic link to {os.readlink(path)}, which does not "
                                 "exist", file=path)
            if not _readable(path):
                raise InputError("cannot read the file (permission denied)", file=path)
            files.append(_classify(path))
    kinds = {f.format for f in files}
    if len(kinds) > 1:
        raise InputError("the input mixes CSV and TFRecord files; read each format separately: "
                         + files_text(files, shown=4))
    return files


def log_file(path: str) -> LogFile:
    """The LogFile of one path that `expand_inputs` returned, read as a name, not a glob: a
    worker handed expanded paths must not expand `d[1].csv` again (it would match `d1.csv`)."""
    return _classify(path)


def _is_empty_marker(path: str) -> bool:
    """An empty file whose name starts with '_' (`_SUCCESS`), as Hadoop's readers skip."""
    return os.path.basename(path).startswith("_") and file_size(path) == 0


# Compressions the readers do not read, by their files' first bytes: (magic, name, the command
# that writes the file out).
_OTHER_COMPRESSIONS = ((b"BZh", "bzip2", "bzip2 -dc"), (b"\xfd7zXZ\x00", "xz", "xz -dc"),
                       (b"\x28\xb5\x2f\xfd", "zstd", "zstd -dc"), (b"PK\x03\x04", "zip", "unzip -p"),
                       (b"7z\xbc\xaf\x27\x1c", "7z", "7z e -so"), (b"\x04\x22\x4d\x18", "lz4", "lz4 -dc"))


def _classify(path: str) -> LogFile:
    with open_binary(path) as handle:
        head = handle.read(6)
    for magic, kind, command in _OTHER_COMPRESSIONS:
        # (bzip2's fourth byte is its block size, 1-9; a TFRecord's first bytes are a length)
        if head.startswith(magic) and (kind != "bzip2" or head[3:4] in b"123456789") and not (
                path.lower().endswith(TFRECORD_SUFFIXES)):
            raise InputError(f"is {kind}-compressed; the readers read plain or gzip files: "
                             f"recompress it with gzip ({command} FILE | gzip > FILE.gz)",
                             file=path)
    is_gzip = head[:2] == b"\x1f\x8b"
    lower = path.lower()
    if lower.endswith((".gz", ".gzip")) and not is_gzip and file_size(path) > 0:
        raise InputError("is named as gzip but is not gzip data (corrupt or mislabelled)", file=path)
    if lower.endswith(CSV_SUFFIXES):
        return LogFile(path, "csv", is_gzip)
    if lower.endswith(TFRECORD_SUFFIXES):
        return LogFile(path, "tfrecord", is_gzip)
    # Unknown suffix: a text first line with a separator is CSV (a tab or a semicolon, to be
    # refused by its header with the reason), anything else TFRecord.
    try:
        first = open_text(LogFile(path, "csv", is_gzip)).readline()
        looks_csv = any(c in first for c in ",\t;|") and "\x00" not in first
    except (OSError, UnicodeDecodeError, EOFError, zlib.error):
        looks_csv = False
    return LogFile(path, "csv" if looks_csv else "tfrecord", is_gzip)


def open_text(log_file: LogFile, newline: str = "") -> io.TextIOBase:
    """The file as UTF-8 text (a BOM dropped). `newline=""` (for the csv module) ends lines at
    CR, LF or CRLF; `newline="\n"` at LF only, as the TensorFlow reader does, so that a lone CR
    stays inside its line and lines are numbered as the reader numbers them."""
    raw = open_binary(log_file.path)
    if log_file.gzip:
        raw = gzip.GzipFile(fileobj=raw, mode="rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline=newline)


# `gzip_damage`'s reason for a stream cut short (the rows before the cut are whole; those of
# a corrupt stream cannot be told from damaged bytes).
GZIP_CUT = ("the gzip stream stops before its end marker: the file was cut short, as by a "
            "writer stopped after a flush or a copy broken off")
# {(path, bytes, mtime_ns): reason or None}: each gzip file is checked once a process.
_GZIP_CHECKED: dict = {}
_GZIP_LOCKS: dict = {}
_GZIP_CHECKING = threading.Lock()


def gzip_damage(log_file: LogFile) -> str | None:
    """Why gzip `log_file` is damaged, or None when every member decompresses to its end marker
    and matches its CRC-32 and length. TensorFlow's readers take a stream that stops after a
    flush (a writer killed mid-file: no final block, no trailer) as complete, with its last
    line cut, and produce bytes of a corrupt stream until inflate happens to fail, so each
    gzip file is read once through zlib, which checks both (about 0.3 s a million rows).
    Zero bytes after a member are padding to Python's gzip (and after the last, to gzip -dc),
    but TensorFlow's reader fails on any between two members and on two or more after the last ("incorrect
    header check", naming no file): a damage too, with the way out."""
    if not log_file.gzip:
        return None
    if is_url(log_file.path):
        key = (log_file.path,)  # (a URL's stat is a request: checked once a process)
    else:
        status = os.stat(log_file.path)
        key = (log_file.path, status.st_size, status.st_mtime_ns)
    with _GZIP_CHECKING:
        lock = _GZIP_LOCKS.setdefault(key, threading.Lock())
    with lock:  # two threads asking for one file (a counting pass beside training) wait for one
        if key not in _GZIP_CHECKED:
            _GZIP_CHECKED[key] = _gzip_damage(log_file.path)
    return _GZIP_CHECKED[key]


def _gzip_damage(path: str) -> str | None:
    inflate, started, zeros = zlib.decompressobj(31), False, 0  # zeros: after the member's end
    try:
        with open_binary(path) as handle:
            while True:
                chunk = handle.read(1 << 20)
                if not chunk:
                    break
                while chunk:
                    if inflate.eof:  # a member ended: padding, or the next member
                        stripped = chunk.lstrip(b"\0")
                        zeros += len(chunk) - len(stripped)
                        chunk = stripped
                        if not chunk:
                            break
                        if zeros:  # (TensorFlow's reader fails on any zero byte there)
                            return _padding(zeros, more=True)
                        inflate, started, zeros = zlib.decompressobj(31), False, 0
                    inflate.decompress(chunk, 1 << 22)
                    started = True
                    chunk = inflate.unconsumed_tail or inflate.unused_data
    except zlib.error as error:
        detail = str(error).split(": ", 1)[-1]  # "Error -3 while decompressing data: ..."
        return f"its gzip data is corrupt: {detail}"
    except OSError as error:  # (removed or unreadable since the glob was expanded)
        raise InputError(f"cannot read the file ({error.strerror or error})", file=path) from None
    if started and not inflate.eof:
        return GZIP_CUT
    return _padding(zeros, more=False) if zeros > 1 else None  # (one it skips at the end)


_PADDING = "zero bytes of padding "


def _padding(zeros: int, more: bool) -> str:
    if more:  # (gzip -dc stops at them: the members after would be lost)
        return (f"{zeros:,} {_PADDING}between two gzip members, which Python's gzip reads past "
                "but TensorFlow's reader and gzip -dc cannot; write it again with Python's: "
                "python3 -c \"import gzip, sys; sys.stdout.buffer.write(gzip.open(sys.argv[1])"
                ".read())\" FILE | gzip > NEW")
    return (f"{zeros:,} {_PADDING}after its gzip data, which Python's gzip and gzip -dc read "
            "past but TensorFlow's reader cannot; write it again without them: "
            "gzip -dc FILE | gzip > NEW")


def gzip_damages(files: Sequence[LogFile]) -> list[str | None]:
    """`gzip_damage` of each of `files`, on two threads (zlib releases the GIL)."""
    if sum(f.gzip for f in files) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(gzip_damage, files))
    return [gzip_damage(f) for f in files]


def check_gzip_files(files: Sequence[LogFile]) -> None:
    """InputError for the first damaged gzip file of `files` (`gzip_damage`)."""
    for log_file, reason in zip(files, gzip_damages(files)):
        if reason:
            raise InputError(f"is corrupt or truncated ({reason})", file=log_file.path)


def damage_reason(message: str, gzip: bool = False) -> str:
    """TensorFlow's reason for an unreadable TFRecord stream, for people: "truncated record at
    1253270' failed with EOF reached" reads "a record cut short at byte 1,253,270: EOF
    reached" (`gzip`: "... of the decompressed stream", where TensorFlow counts)."""
    reason = tf_reason(message)
    cut = re.search(r"truncated record at (\d+)'? failed with (.*)$", reason)
    if cut:
        where = " of the decompressed stream" if gzip else ""
        return f"a record cut short at byte {int(cut[1]):,}{where}: {cut[2].strip()}"
    return reason


def tfrecord_damage(log_file: LogFile, message: str) -> InputError:
    """The InputError of TFRecord `log_file`, whose reading failed with TensorFlow's `message`:
    read again to number the first record that cannot be read (1-based), with its reason."""
    import tensorflow as tf

    dataset = tf.data.TFRecordDataset(log_file.path, "GZIP" if log_file.gzip else "")
    readable = 0
    try:
        for batch in dataset.batch(4096).as_numpy_iterator():
            readable += len(batch)
        return InputError(f"is corrupt or truncated ({damage_reason(message, log_file.gzip)})",
                          file=log_file.path)  # read whole this time: no record to name
    except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError,
            tf.errors.UnavailableError) as error:  # the file, not its records
        return InputError(f"cannot read the file ({tf_reason(error.message)})",
                          file=log_file.path)
    except tf.errors.OpError:
        pass
    try:  # within the failing batch, record by record
        for _ in dataset.skip(readable).as_numpy_iterator():
            readable += 1
    except tf.errors.OpError as error:
        message = error.message
    return InputError(f"is corrupt or truncated: {readable:,} record(s) read, then "
                      f"{damage_reason(message, log_file.gzip)}", file=log_file.path,
                      row=readable + 1, row_kind="record")
