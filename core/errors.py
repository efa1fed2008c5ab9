"""Errors for people: bad input names the file, the row and the column, and what was expected.

Input checks that run inside `tf.data` cannot raise Python exceptions; they fail with a
`tf.errors.InvalidArgumentError` whose message carries `MARKER` followed by the readable text.
`from_tf_error` turns such an error (and TensorFlow's own parse errors, which name the record
through `parse_example`'s `names`) back into an `InputError`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys

# Prefix of every in-graph input-check message (see `_check` in core/log_diagnosis.py).
MARKER = "dwellrank-input-error: "


class InputError(ValueError):
    """Bad input that a person must fix.

    Attributes: `file` (path or glob), `row` (1-based line of a CSV file counting the header as
    line 1, or 1-based record of a TFRecord file), `column` (column or feature name),
    `reason` (what was wrong and what was expected), and `warnings` (lines a tool prints as
    `warning:` before the error: what it found on the way that bears on the refusal, such as
    the quality gate's notes on the logs it judged on).
    """

    def __init__(self, reason: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None, row_kind: str = "line", warnings: tuple = ()):
        self.reason, self.file, self.row, self.column = reason, file, row, column
        self.warnings = tuple(warnings)
        where = []
        if file:
            where.append(str(file))
        if row is not None:
            where.append(f"{row_kind} {row}")
        if column:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


class Stopped(Exception):
    """A run asked to stop by a signal stopped cleanly (`ranking.preemption`): not bad input.
    The message says where it stopped and how to go on; `status` is the process's exit status
    (128 + the signal's number, as a shell reports a process the signal ended)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class Terminated(BaseException):
    """SIGTERM to a tool outside training (`core.cli.run`): raised in the main thread as Ctrl-C
    raises KeyboardInterrupt, so outputs in the making are removed on the way out (a
    BaseException: no `except Exception` of a library takes it for an error of its own)."""

    def __init__(self, message: str = "terminated (SIGTERM)"):
        super().__init__(message)


def interrupted_by(error: BaseException) -> str | None:
    """"SIGINT" or "SIGTERM" when `error` is a stop asked by that signal (KeyboardInterrupt,
    `Terminated`), also as Beam re-raises one from a step (a RuntimeError "KeyboardInterrupt
    [while running ...]", or the exception raised from it); else None."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, KeyboardInterrupt) or (
                isinstance(error, RuntimeError) and str(error).startswith("KeyboardInterrupt")):
            return "SIGINT"
        if isinstance(error, Terminated):
            return "SIGTERM"
        error = error.__cause__ or error.__context__
        seen += 1
    return None


_WHERE = re.compile(r"(?P<file>.*?), (?P<kind>line|record) (?P<row>\d+)"
                    r"(?:, column '(?P<column>[^']*)')?: (?P<reason>.*)\Z", re.S)
_PARSE_EXAMPLE = re.compile(
    r"Name: (?P<file>.*?):record (?P<row>\d+), Key: (?P<key>[^,]+), Index: \d+\.\s*(?P<why>[^\n\[]*)")


def tf_reason(message: str) -> str:
    """The first line of a TensorFlow error message without its graph-node decorations."""
    line = message.strip().splitlines()[0] if message.strip() else message
    line = re.sub(r"\{\{[^}]*\}\}\s*", "", line)
    return re.sub(r"\s*\[Op:.*$", "", line).strip()


def from_tf_error(error: Exception) -> InputError | None:
    """The `InputError` described by a TensorFlow error raised while reading logs, or None."""
    message = getattr(error, "message", None) or str(error)
    at = message.find(MARKER)
    if at >= 0:
        text = message[at + len(MARKER):]
        text = re.split(r"\]?\s*\n|\]\s*\[|\]\s*$", text, maxsplit=1)[0].strip()
        # Beam appends the failing step: " [while running 'Read']".
        text = re.sub(r"\s*\[while running .*$", "", text)
        # tf.debugging.Assert prints strings with C escapes for quotes and backslashes.
        text = text.replace("\\'", "'").replace('\\"', '"').replace("\\\\", "\\")
        where = _WHERE.match(text)
        if where:
            return InputError(where["reason"], file=where["file"], row=int(where["row"]),
                              column=where["column"], row_kind=where["kind"])
        return InputError(text)
    match = _PARSE_EXAMPLE.search(message)
    if match:
        why = match["why"].strip().rstrip(".")
        return InputError(why, file=match["file"], row=int(match["row"]), column=match["key"],
                          row_kind="record")
    return None


@contextlib.contextmanager
def reraised_from_workers():
    """Driver side of a Beam pipeline: an input error raised in a worker (see
    `log_diagnosis.input_errors_for_beam`) comes back, wrapped by the runner, as the InputError
    it was."""
    quiet_input_error_logs()
    try:
        yield
    except InputError:
        raise
    except Exception as error:
        translated = from_tf_error(error)
        if translated is None:
            raise
        raise translated from None


class _InputErrorRecords(logging.Filter):
    """Drops log records about bad input carried from a Beam worker (their text holds MARKER),
    and about a step a signal stopped (`interrupted_by`): Beam logs each failed bundle with its
    traceback before the driver re-raises the error, which the tool then prints as one readable
    line. Other records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge
            return True
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and interrupted_by(error):
            return False
        seen = 0
        while error is not None and seen < 10:  # the exception and what it was raised from
            text += str(error)
            error = error.__cause__ or error.__context__
            seen += 1
        return MARKER not in text


_FILTER = _InputErrorRecords()


class _MarkerFreeStream:
    """A text stream that drops writes carrying MARKER and passes everything else: Beam's SDK
    worker also prints a failed instruction's traceback straight to stderr
    (`sdk_worker._execute`), outside logging."""

    def __init__(self, stream):
        self._stream = stream
        self._dropped = False

    def write(self, text):
        # print() writes its line end separately: drop the one after a dropped text too.
        if MARKER in text or (self._dropped and text == "\n"):
            self._dropped = MARKER in text
            return len(text)
        self._dropped = False
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def quiet_input_error_logs() -> None:
    """Keeps Beam's reports of bad input carried from workers (their text holds MARKER) out of
    this process's output (the tool's, or a Beam worker's): a filter on the root logger's and
    Beam's handlers and on logging's last resort, and a stderr that drops such writes;
    idempotent. The tool prints the error once, as one readable line."""
    if not isinstance(sys.stderr, _MarkerFreeStream):
        sys.stderr = _MarkerFreeStream(sys.stderr)
    handlers = [h for name in ("", "apache_beam") for h in logging.getLogger(name).handlers]
    if logging.lastResort is not None:  # what prints when no handler is configured (workers)
        handlers.append(logging.lastResort)
    for handler in handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    beam = logging.getLogger("apache_beam")
    if _FILTER not in beam.filters:
        beam.addFilter(_FILTER)
