"""What every command-line tool shares: quiet TensorFlow, readable errors, exit status, and a
process that ends as soon as its tool is done.

Import this module before TensorFlow in a tool's `__main__` module: it sets
`TF_CPP_MIN_LOG_LEVEL` so TensorFlow's start-up chatter stays out of the tool's own output.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import errno
import os
import re
import signal
import sys
import threading
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The same for processes the tools start (Beam's multi-processing workers).
os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")

# Library chatter at import time (e.g. google.api_core's Python-version notice) is not ours.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

from absl import app, flags, logging  # noqa: E402

from core import threads  # noqa: E402
from core.errors import InputError, Stopped, Terminated, interrupted_by, quiet_input_error_logs  # noqa: E402


def _stdout_to_devnull() -> None:
    """Points standard output at /dev/null, its unwritten buffer dropped with it."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def report(error: InputError) -> None:
    for line in getattr(error, "warnings", ()):
        warn(line)
    print(f"error: {error}", file=sys.stderr)


def warn(message: str) -> None:
    """One line `warning: ...` on stderr: the input was read, but something in it looks wrong."""
    print(f"warning: {message}", file=sys.stderr)


def run(main, *, pass_unknown_flags: bool = False, argv: list[str] | None = None,
        end_process: bool | None = None, takes_arguments: bool = False) -> None:
    """Runs an absl `main(argv)`; bad input ends in one readable line and exit status 1.

    With `pass_unknown_flags`, flags this program does not define reach `main` in `argv[1:]`
    (Beam pipeline options such as --runner or --direct_num_workers) instead of failing.
    Without it, an argument absl's parsing leaves over (a stray word anywhere on the line, a
    --flagfile line without its leading --) is refused unless `takes_arguments` says `main`
    reads them (no tool here does).
    `argv` defaults to sys.argv.

    `end_process` (default: `owns_process(argv)`): once the tool has exited, the process ends
    at once with its status (`end_now`) instead of raising SystemExit into the interpreter's
    teardown.
    """
    if end_process is None:
        end_process = owns_process(argv)
    given = list(sys.argv if argv is None else argv)[1:]

    def guarded(argv):
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        logging.set_verbosity(logging.ERROR)
        quiet_input_error_logs()
        if "core.log_diagnosis" in sys.modules:
            # A reader of an earlier run in this process (tests' command servers, a notebook)
            # must not be the one a TensorFlow error of this run is explained against.
            sys.modules["core.log_diagnosis"].remember_source(None)
        try:
            from core.log_files import path_flag_problem, url_flag_problem

            problem = (url_flag_problem({name: flags.FLAGS[name].value for name in flags.FLAGS})
                       or path_flag_problem({name: flags.FLAGS[name].value
                                             for name in flags.FLAGS
                                             if flags.FLAGS[name].present}))
            if problem is not None:
                raise InputError(problem)
            repeated = repeated_flags_problem(given)
            if repeated is not None:
                raise InputError(repeated)
            if not (pass_unknown_flags or takes_arguments) and len(argv) > 1:
                raise InputError(stray_arguments_problem(argv[1:]))
            return main(argv)
        except InputError as error:
            report(error)
            sys.exit(1)
        except Stopped as stop:  # asked to stop by a signal, and stopped cleanly
            print(f"stopped: {stop}", file=sys.stderr)
            sys.exit(stop.status)
        except KeyboardInterrupt:  # Ctrl-C: the user knows why; no traceback
            _stopped_by("SIGINT")
        except Terminated:  # SIGTERM (`_sigterm_raises`), after outputs in the making went
            _stopped_by("SIGTERM")
        except BrokenPipeError:
            # The reader of stdout went away (`| head`): no traceback, and nothing more to
            # write there (its final flush would fail again), as Python's docs advise.
            _stdout_to_devnull()
            sys.exit(1)
        except OSError as error:
            if error.errno not in _WRITE_ERRNOS:
                raise
            # A full disk or a read-only one is not a bug of the tool: one line, as for bad
            # input. Without a file name the write was to standard output, whose final flush
            # would fail again.
            if error.filename is None:
                _stdout_to_devnull()
            print(f"error: {_WRITE_ERRNOS[error.errno]} "
                  f"({error.filename or 'standard output'}); {_WRITE_REMEDY[error.errno]}",
                  file=sys.stderr)
            sys.exit(1)
        except MemoryError as error:  # numpy's: an array larger than the machine
            print(f"error: {_out_of_memory(error)}", file=sys.stderr)
            sys.exit(1)
        except Exception as error:  # TensorFlow errors raised while reading input
            if interrupted_by(error):  # a signal's stop, as Beam re-raised it from a step
                _stopped_by(interrupted_by(error))
            if _tf_out_of_memory(error):
                print(f"error: {_out_of_memory(error)}", file=sys.stderr)
                sys.exit(1)
            written = _tf_write_error(error)
            if written is not None:
                print(f"error: {written}", file=sys.stderr)
                sys.exit(1)
            translated = _translate(error)
            if translated is None:
                raise
            report(translated)
            sys.exit(1)

    try:
        with _sigterm_raises():
            if pass_unknown_flags:
                app.run(guarded, argv=argv, flags_parser=_parse_known_flags)
            else:
                app.run(guarded, argv=argv)
    except SystemExit as stop:
        if end_process:
            end_now(stop.code)
        raise


def _stopped_by(signal_name: str) -> None:
    """One `stopped:` line; exit with a shell's status for a process the signal ended."""
    print(f"stopped: {'interrupted' if signal_name == 'SIGINT' else 'terminated'} "
          f"({signal_name})", file=sys.stderr)
    sys.exit(130 if signal_name == "SIGINT" else 143)


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises():
    """Within the block, SIGTERM raises `Terminated` in the main thread, as Ctrl-C raises
    KeyboardInterrupt: a tool stopped by `kill` or a container's stop removes the output it was
    making (`core.atomic`) and says so in one line, where the default action left a hidden
    temporary directory and no word (and a container's PID 1 ignored the signal). Only where
    SIGTERM has its default action: training installs its own handler first
    (`ranking.preemption`), and an inherited SIG_IGN stays."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _parse_known_flags(args: list[str]) -> list[str]:
    """absl's flag parsing with unknown flags left in the returned argv; a missing required
    flag or a bad value ends as absl's own parser ends it (its message, status 1), not in a
    traceback."""
    try:
        argv = flags.FLAGS(args, known_only=True)
    except flags.Error as error:
        _flags_error(str(error))
    problem = beam_flags_problem(argv[1:])
    if problem:
        _flags_error(problem)
    return argv


def _flags_error(text: str) -> None:
    """Ends as absl's own parser ends on a bad flag: its message format, status 1."""
    lines = text.splitlines() or [""]
    message = (" " + lines[0] if len(lines) == 1
               else "".join("\n  " + line for line in lines))
    print(f"FATAL Flags parsing error:{message}\n"
          "Pass --helpshort or --helpfull to see help on flags.", file=sys.stderr)
    sys.exit(1)


def beam_flags_problem(args: list[str]) -> str | None:
    """What is wrong with `args` (left over after a tool's own flags) as Apache Beam pipeline
    options, or None: those Beam does not parse, or Beam's own complaint about a value
    (`--direct_num_workers=abc`), in one line. Beam itself only logs and drops an unknown one,
    so a mistyped flag (`--allow_unclicked_dwel`) or one another tool defines would be ignored
    in silence. Beam is imported only when there is something to check. A `--runner` is
    imported first, so that options of its own module count as known; one Beam cannot make
    (unknown, or its module does not import) is the problem, as is a negative
    `--direct_num_workers` (Beam's own parser takes it and its runner fails with an
    IndexError)."""
    if not args:
        return None
    import contextlib
    import io
    import logging as std_logging

    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    options = PipelineOptions(args)
    complaint = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaint):
            runner = options.view_as(StandardOptions).runner
    except SystemExit:
        return _last_line(complaint.getvalue())
    if runner:
        try:
            from apache_beam.runners.runner import create_runner

            create_runner(runner)
        except Exception as error:  # an unknown runner, or one whose module does not import
            return f"--runner={runner}: Apache Beam cannot make this runner: {error}"
    dropped: list[str] = []

    class _Dropped(std_logging.Handler):
        def emit(self, record):
            # Beam's own line for what its parser left over (PipelineOptions.get_all_options).
            message = record.getMessage()
            if message.startswith("Discarding unparseable args"):
                listed = message.partition(":")[2].strip()
                try:
                    dropped.extend(ast.literal_eval(listed))
                except (ValueError, SyntaxError):
                    dropped.append(listed)

    logger = std_logging.getLogger("apache_beam.options.pipeline_options")
    handler, propagate, level = _Dropped(), logger.propagate, logger.level
    disabled = std_logging.root.manager.disable
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(std_logging.WARNING)  # whatever the root logger's level
    std_logging.disable(std_logging.NOTSET)
    try:
        with contextlib.redirect_stderr(complaint):
            options.get_all_options()
    except SystemExit:  # argparse refused a value
        return _last_line(complaint.getvalue())
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        logger.setLevel(level)
        std_logging.disable(disabled)
    unknown = [arg for arg in dropped if arg.startswith("-")]
    if not unknown and dropped:  # words only: a flagfile line without --, an expanded glob
        return stray_arguments_problem(dropped, "neither this command nor Apache Beam takes "
                                                "other arguments")
    if not unknown:
        from apache_beam.options.pipeline_options import DirectOptions

        # Beam parses any int and fails deep in its runner on a negative one (IndexError).
        workers = options.view_as(DirectOptions).direct_num_workers
        if workers is not None and workers < 0:
            return f"Apache Beam: --direct_num_workers must be >= 0, not {workers}"
        return None
    return (f"{', '.join(unknown)}: neither a flag of this command nor an Apache Beam pipeline "
            "option")


def _names_a_flag(arg: str) -> bool:
    """Whether `arg` without its leading -- would be a flag: `learning_rate=0.5`, `noplot`."""
    name = arg.split("=", 1)[0]
    if name in flags.FLAGS or name == "flagfile":
        return True
    return name.startswith("no") and name[2:] in flags.FLAGS and flags.FLAGS[name[2:]].boolean


def repeated_flags_problem(args: list[str]) -> str | None:
    """The line for a list flag of this program (a comma-separated list: the logs' globs,
    --model_dirs, --policies) given twice on the command line (`args`, before absl's parsing),
    or None. absl keeps the last value without a word, which for a list drops the first:
    `--input=day1.csv --input=day2.csv` read day 2 alone. Other flags keep absl's rule, the
    last value wins, which scripts use to override (a --flagfile's lines are not in `args`)."""
    seen: dict[str, str] = {}
    for arg in args:
        if arg == "--":  # what follows is not flags
            break
        if not arg.startswith("-") or arg in ("-", "--"):
            continue
        name = arg.lstrip("-").split("=", 1)[0]
        if name not in flags.FLAGS and name.startswith("no") and name[2:] in flags.FLAGS:
            name = name[2:]  # --nocompress is --compress's
        if name not in flags.FLAGS or not _is_list_flag(flags.FLAGS[name]):
            continue
        if name in seen:
            return (f"--{name} is given twice ({seen[name]} and {arg}); only the last would be "
                    "read: give one comma-separated list")
        seen[name] = arg
    return None


def _is_list_flag(flag) -> bool:
    """A flag whose value is a comma-separated list (not a multi flag, which takes repeats)."""
    return not isinstance(flag, flags.MultiFlag) and (
        isinstance(flag.parser, flags.BaseListParser)
        or "comma-separated" in (flag.help or "").lower())


def stray_arguments_problem(args: list[str],
                            refused_by: str = "this command takes no other arguments") -> str:
    """The line for arguments absl's parsing left over, which the tool takes none of: a word on
    the command line, a --flagfile line without its leading -- (absl passes such a line on as
    an argument, so `learning_rate=0.5` in a flagfile was dropped without a word), or files of
    a glob the shell expanded after a space-separated flag (`--train logs/*.csv` trained on the
    first file only)."""
    shown = ", ".join(repr(a) for a in args[:3]) + (
        f" and {len(args) - 3} more" if len(args) > 3 else "")
    text = (f"{shown}: {'not a flag' if len(args) == 1 else 'not flags'} (a flag starts with "
            f"--, on a --flagfile's lines too), and {refused_by}")
    hints = [f"--{a}" for a in args if _names_a_flag(a)]
    if hints:
        return f"{text}: write {', '.join(hints)}"
    if all(os.path.exists(a) for a in args):
        return (f"{text}: are they a glob the shell expanded? Quote it, as in "
                "--train='logs/*.csv'")
    return text


def _last_line(text: str) -> str:
    """argparse's complaint without its usage block: its last line, without the program name."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "a Beam pipeline option has a bad value"
    return "Apache Beam: " + (last.split(": error: ", 1)[-1])


def owns_process(argv: list[str] | None) -> bool:
    """Whether a tool run with `argv` is the process's program, which may end with it: run from
    its own command line (`argv` None), not under a profiler or debugger (`python -m cProfile`,
    pdb: they report after the program), nor in an interactive session (`python -i`, IPython's
    `%run`), nor under the tests' command servers (tests/cli_harness.py passes `argv`)."""
    return (argv is None and sys.getprofile() is None and sys.gettrace() is None
            and not sys.flags.interactive and "IPython" not in sys.modules)


def end_now(code) -> None:
    """Ends the process with `code` (a `SystemExit` code: None, a status, or a message for
    stderr and status 1) without the interpreter's teardown.

    The teardown frees every object one by one, TensorFlow's graphs and runtime included: 0.6-0.7 s
    of a training run and 1 s of the statistics job after their last line (docs/BENCHMARKS.md).
    What an exit owes the user happens first: the exit handlers run (logging's flush,
    multiprocessing's children, temporary directories) and stdout and stderr are flushed; a
    failed flush (a full disk, a closed pipe) turns status 0 into 120, as Python's own exit
    does. The tools' outputs are whole by then (each is written to a temporary path and
    renamed, or closed by its writer, before `main` returns: the tools' duty, not this
    function's). If a thread other than the main one is still running, the process exits as
    Python would, waiting for it; only a failed tool ends without waiting for the reads it
    started in the background (`threads.read_in_background`), which write nothing.
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    running = [t for t in threading.enumerate() if t is not threading.main_thread()
               and t.is_alive() and not t.daemon]
    if status != 0:
        running = [t for t in running if not threads.is_background_read(t)]
    if running:
        raise SystemExit(code)
    atexit._run_exitfuncs()  # noqa: SLF001 - what the interpreter runs at exit, run early
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError) as error:
            status = status or 120
            if stream is sys.stdout:
                try:
                    print(f"error: could not write the output ({error})", file=sys.stderr)
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
    os._exit(status)


# Writes that fail for the machine's sake, not the tool's: one `error:` line each.
_WRITE_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
                 errno.EDQUOT: "disk quota exceeded", errno.EACCES: "permission denied",
                 # An output path through a file (`--output_dir=notes.txt/out`) or onto one
                 errno.ENOTDIR: "a part of the path is a file, not a directory",
                 errno.EEXIST: "a file is where a directory was to be made",
                 errno.ENAMETOOLONG: "a file name longer than the file system allows"}
_WRITE_REMEDY = {errno.ENOSPC: "free some and run again",
                 errno.EROFS: "write the output to a writable place",
                 errno.EDQUOT: "free some of the quota and run again",
                 errno.EACCES: "check the path's permissions",
                 errno.ENOTDIR: "give an output path in a directory",
                 errno.EEXIST: "give an output path that is not a file",
                 errno.ENAMETOOLONG: "give a shorter name (255 bytes at most)"}


def _tf_write_error(error: Exception) -> str | None:
    """The one-line account of a TensorFlow error raised by a write that failed for the same
    reasons (a checkpoint or SavedModel saved to a full or read-only disk: TensorFlow raises
    its own error types, naming the file in its message), or None."""
    if "tensorflow" not in sys.modules:
        return None
    import tensorflow as tf

    if not isinstance(error, tf.errors.OpError):
        return None
    for code, text in _WRITE_ERRNOS.items():
        if code == errno.EACCES:  # (a read TensorFlow was refused is the input's: translated)
            continue
        found = re.search(r"(\S+?)['\"]?;\s*" + re.escape(os.strerror(code)),
                          error.message or "", re.I)
        if found or os.strerror(code).lower() in (error.message or "").lower():
            return (f"{text} ({found[1] if found else 'writing'}); "
                    f"{_WRITE_REMEDY[code]}")
    return None


def _tf_out_of_memory(error: Exception) -> bool:
    """Whether `error` is TensorFlow's failed allocation (ResourceExhaustedError, "OOM when
    allocating tensor ...")."""
    if "tensorflow" not in sys.modules:
        return False
    import tensorflow as tf

    return isinstance(error, tf.errors.ResourceExhaustedError) and "OOM" in (error.message or "")


def _out_of_memory(error: Exception) -> str:
    """One line for an allocation this machine cannot hold: what was asked (a tensor's shape
    and type, an array's size), the machine's memory, and what to lower. A size flag far too
    large (`--embedding_dim=10**12`) fails at its first allocation, not in a swap storm."""
    text = str(getattr(error, "message", None) or error)
    tensor = re.search(r"OOM when allocating tensor with shape\s*\[([^\]]*)\] and type (\w+)",
                       text)
    array = re.search(r"Unable to allocate (.+?) for an array with shape (\([^)]*\)) and data "
                      r"type (\w+)", text)
    if tensor:
        what = f"a tensor of shape [{tensor[1]}] ({tensor[2]})"
    elif array:
        what = f"{array[1]} for an array of shape {array[2]} ({array[3]})"
    else:
        what = "an allocation"
    if "device:GPU" in text:
        where = "the GPU's memory"
    else:
        try:
            where = (f"the memory available (this machine has "
                     f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} "
                     "GiB)")
        except (ValueError, OSError):  # not every system names these
            where = "the memory available"
    return (f"out of memory: {what} did not fit in {where}; lower the sizes given to this "
            "command (model widths and vocabularies such as --embedding_dim, --tower_units, "
            "--expert_units and a --feature_config's hash_buckets; --batch_size; counts of "
            "users, items or candidates) or give it smaller input")


def _translate(error: Exception) -> InputError | None:
    if "tensorflow" not in sys.modules:
        return None
    from core import log_diagnosis

    return log_diagnosis.translate_error(error)
