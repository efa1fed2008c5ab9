"""core.cli's end of a process: a tool run from its own command line ends as soon as it exits,
with its status, its buffered output and its exit handlers, without the interpreter's teardown;
a success waits for another thread still running, a failure only not for background reads; a
failed flush is status 120; a tool run in-process (`argv` given: tests/cli_harness.py), under
a profiler or a debugger raises SystemExit as before.

The programs run in fresh processes without PYTHONUNBUFFERED, so that stdout is buffered as it
is for a user's pipe. Each leaves marks: `atexit` (its exit handlers ran) and `teardown` (an
object's __del__ ran in the interpreter's teardown)."""

import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

PROGRAM = """
import atexit, os, sys, threading, time
from core import cli, threads
from core.errors import InputError

MARKS = sys.argv[1]

def mark(name):
    open(os.path.join(MARKS, name), "w").close()

class Teardown:
    # Runs when the interpreter's teardown clears this module (builtins may be gone by then).
    def __del__(self, _open=open, _path=os.path.join(MARKS, "teardown")):
        _open(_path, "w").close()

KEPT = Teardown()
atexit.register(mark, "atexit")

def main(argv):
{body}

cli.run(main, argv=None if "own" in sys.argv else [sys.argv[0]], takes_arguments=True)
"""

# A real command run as `python -m MODULE ARGS...` would, with the same marks.
COMMAND = """
import atexit, os, runpy, sys

MARKS = sys.argv[1]

class Teardown:
    def __del__(self, _open=open, _path=os.path.join(MARKS, "teardown")):
        _open(_path, "w").close()

KEPT = Teardown()
atexit.register(lambda: open(os.path.join(MARKS, "atexit"), "w").close())
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def _env():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = REPO
    return env


def _marks(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    return marks


def _run(tmp_path, body: str, *args: str, python=(), stdout=subprocess.PIPE):
    """(exit status, stdout, stderr, marks left) of PROGRAM with `body` as main's, run by
    `python -X... python... tool.py MARKS args...`."""
    script = tmp_path / "tool.py"
    script.write_text(PROGRAM.format(body=textwrap.indent(textwrap.dedent(body), "    ")))
    marks = _marks(tmp_path)
    # A process that waits for an endless thread runs into the timeout: the test fails.
    done = subprocess.run([sys.executable, *python, str(script), str(marks), *args], cwd=REPO,
                          env=_env(), stdout=stdout, stderr=subprocess.PIPE, text=True,
                          timeout=60)
    return done.returncode, done.stdout, done.stderr, sorted(os.listdir(marks))


@pytest.mark.parametrize("own", [True, False])
def test_a_success_ends_with_its_output_and_exit_handlers_and_skips_the_teardown(
        tmp_path, own):
    code, out, err, marks = _run(tmp_path, 'print("trained", end="")', *(["own"] * own))
    assert (code, out) == (0, "trained"), err
    # Run in-process (argv given), the tool raises SystemExit and Python ends as usual.
    assert marks == (["atexit"] if own else ["atexit", "teardown"])


def test_a_failure_does_not_wait_for_a_background_read(tmp_path):
    code, out, err, marks = _run(tmp_path, """
        threads.read_in_background(threading.Event().wait)  # a read that never ends
        print("counting", end="")
        raise InputError("expected 0 or 1, found 3", file="eval.csv", row=4, column="click")
        """, "own")
    assert code == 1
    assert out == "counting"
    assert err.strip() == "error: eval.csv, line 4, column 'click': expected 0 or 1, found 3"
    assert marks == ["atexit"]


@pytest.mark.parametrize("fails", [False, True])
def test_another_thread_is_waited_for_as_python_does(tmp_path, fails):
    code, out, err, marks = _run(tmp_path, f"""
        threading.Thread(target=lambda: (time.sleep(0.5), mark("thread"))).start()
        if {fails}:
            raise InputError("bad")
        """, "own")
    assert code == (1 if fails else 0), err
    assert marks == ["atexit", "teardown", "thread"]


def test_a_message_given_to_exit_goes_to_stderr_with_status_1(tmp_path):
    code, out, err, marks = _run(tmp_path, 'sys.exit("no model directory")', "own")
    assert (code, out, err.strip(), marks) == (1, "", "no model directory", ["atexit"])


def test_output_that_cannot_be_written_is_status_120_as_in_python(tmp_path):
    with open("/dev/full", "w") as full:
        code, _, err, marks = _run(tmp_path, 'print("the report")', "own", stdout=full)
    assert code == 120
    assert "error: could not write the output" in err and "No space left" in err
    assert marks == ["atexit"]


def test_a_full_disk_mid_run_is_one_line_with_status_1(tmp_path):
    # A write that fails while the tool runs (a flushed line to a full device), not at the end.
    with open("/dev/full", "w") as full:
        code, _, err, marks = _run(tmp_path, 'print("a line", flush=True)', "own", stdout=full)
    assert (code, err) == (1, "error: no space left on device (standard output); free some "
                              "and run again\n")
    assert marks == ["atexit"]


def test_a_read_only_disk_or_a_full_one_under_tensorflow_is_one_line(tmp_path):
    """A write refused by a read-only file system (Python's OSError), and a checkpoint that
    TensorFlow could not save to a full disk (its own error type, the file in its message)."""
    (tmp_path / "ro").mkdir()
    (tmp_path / "full").mkdir()
    code, _, err, _ = _run(tmp_path / "ro", """
        raise OSError(30, "Read-only file system", "/mnt/ro/model/config.json")
        """, "own")
    assert (code, err) == (1, "error: read-only file system (/mnt/ro/model/config.json); write "
                              "the output to a writable place\n")
    code, _, err, _ = _run(tmp_path / "full", """
        import tensorflow as tf
        raise tf.errors.ResourceExhaustedError(None, None, "models/m/checkpoints/ckpt-81_temp/"
                                               "part-0.tempstate7; No space left on device")
        """, "own")
    assert (code, err) == (1, "error: no space left on device (models/m/checkpoints/ckpt-81_temp"
                              "/part-0.tempstate7); free some and run again\n")


def test_a_reader_that_goes_away_ends_the_tool_without_a_traceback(tmp_path):
    # `tool | head -1`: the reader takes one line and closes the pipe; the tool's next write
    # meets a broken pipe, and so would its final flush.
    script = tmp_path / "tool.py"
    script.write_text(PROGRAM.format(body=textwrap.indent(textwrap.dedent("""
        print("first", flush=True)
        time.sleep(0.5)
        for _ in range(1000):
            print("x" * 1000, flush=True)
        """), "    ")))
    marks = _marks(tmp_path)
    tool = subprocess.Popen([sys.executable, str(script), str(marks), "own"], cwd=REPO,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert tool.stdout.readline() == "first\n"
    tool.stdout.close()
    err = tool.stderr.read()
    assert tool.wait(timeout=60) == 1
    assert err == ""
    assert sorted(os.listdir(marks)) == ["atexit"]


def test_under_a_profiler_the_process_ends_as_usual_and_the_profile_is_written(tmp_path):
    profile = tmp_path / "tool.prof"
    code, out, err, marks = _run(tmp_path, 'print("scored", end="")', "own",
                                 python=("-m", "cProfile", "-o", str(profile)))
    assert (code, out) == (0, "scored"), err
    assert profile.stat().st_size > 0
    assert marks == ["atexit", "teardown"]


def _command(tmp_path, module, *args, ends_at_once=True):
    """Runs a tool as its own process; asserts status 0 and, with `ends_at_once`, that it ended
    without the interpreter's teardown (`core.cli.end_now`)."""
    marks = _marks(tmp_path)
    done = subprocess.run([sys.executable, "-c", COMMAND, str(marks), module, *args], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    if ends_at_once:
        assert sorted(os.listdir(marks)) == ["atexit"]  # it ended without the teardown
    else:  # at once, or (a thread still running) as Python ends, with the exit handlers
        assert "atexit" in os.listdir(marks)
    return done


def test_the_training_command_ends_with_its_summaries_written(small_world, tmp_path):
    """TensorBoard's event files (flushed by their writers, not by the teardown) hold the
    training and evaluation scalars when the process has ended."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    model_dir = tmp_path / "model"
    done = _command(tmp_path, "ranking.train", "--model=single_ctr",
                    f"--train={small_world['train']}", f"--eval={small_world['eval']}",
                    f"--stats={small_world['stats']}", "--steps_per_epoch=4", "--log_every=2",
                    "--progress=epoch", f"--model_dir={model_dir}")
    assert done.stdout.rstrip().endswith(f"wrote {model_dir}/eval_metrics.json")

    def tags(kind):
        (path,) = glob.glob(str(model_dir / "logs" / kind / "events.out.tfevents.*"))
        return {(value.tag, event.step)
                for record in tf.data.TFRecordDataset(path).as_numpy_iterator()
                for event in [event_pb2.Event.FromString(record)]
                for value in event.summary.value}

    assert {("loss/loss", 2), ("loss/loss", 4)} <= tags("train")
    assert {("auc_ctr", 4), ("auc_valid_read", 4)} <= tags("eval")


def test_the_statistics_job_with_beam_workers_ends_with_its_artifact_whole(small_world,
                                                                           tmp_path):
    """Beam's DirectRunner in worker processes: the artifact is the one made in-process. How
    the process ends is not asserted: on a loaded machine a thread (presumably of Beam's worker
    handling; its name was not captured) can still be running when the tool returns, and the
    process then ends as Python does, waiting for it (seen once, in a clean-clone run beside a
    training benchmark); either way is correct (`core.cli.end_now`)."""
    output = tmp_path / "stats"
    _command(tmp_path, "pipelines.stats", f"--input={small_world['train']}",
             f"--output_dir={output}", "--direct_running_mode=multi_processing",
             "--direct_num_workers=2", ends_at_once=False)
    expected = small_world["stats"]
    assert (json.load(open(output / "stats.json"))
            == json.load(open(os.path.join(expected, "stats.json"))))

    def rows(directory, table):
        lines = []
        for shard in sorted(glob.glob(os.path.join(directory, table, "part-*"))):
            lines += open(shard).read().splitlines()[1:]  # each shard has its header
        return sorted(lines)

    for table in ("items", "user_days"):
        assert rows(output, table) == rows(expected, table) and rows(output, table), table


@pytest.mark.parametrize("args, problem", [
    ([], None),
    (["--direct_num_workers=2", "--direct_running_mode=multi_processing"], None),
    (["--runner", "DirectRunner", "--direct_num_workers", "2"], None),  # space-separated values
    (["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=gs://b/t"], None),
    (["--runner=NoSuchRunner", "--anything=1"],
     "--runner=NoSuchRunner: Apache Beam cannot make this runner: Unexpected pipeline runner: "
     "NoSuchRunner. Valid values are "),
    (["--runner=no_such_package.Runner"], "--runner=no_such_package.Runner: Apache Beam cannot "
                                          "make this runner: No module named 'no_such_package'"),
    (["--direct_num_workers=-3"], "Apache Beam: --direct_num_workers must be >= 0, not -3"),
    (["--direct_num_workers=0"], None),
    (["--allow_unclicked_dwel", "--direct_num_workers=2", "--bogus=3"],
     "--allow_unclicked_dwel, --bogus=3: neither a flag of this command nor an Apache Beam "
     "pipeline option"),
    (["--typo", "value"], "--typo: neither a flag of this command nor an Apache Beam pipeline "
                          "option"),
    (["stray"], "'stray': not a flag (a flag starts with --, on a --flagfile's lines too), and "
                "neither this command nor Apache Beam takes other arguments"),
    (["--direct_num_workers=abc"],
     "Apache Beam: argument --direct_num_workers: invalid int value: 'abc'"),
])
def test_flags_left_to_beam_are_checked_against_its_options(args, problem):
    import logging

    from core import cli

    def found():  # (Beam's list of its runners is long: the test names its start)
        got = cli.beam_flags_problem(args)
        return got[:len(problem)] if problem and problem.endswith("are ") else got

    assert found() == problem
    # Also with logging switched off, which would hide Beam's own line about dropped flags.
    logging.disable(logging.CRITICAL)
    try:
        assert found() == problem
    finally:
        logging.disable(logging.NOTSET)



TWO_RUNS = """
import sys
import tensorflow as tf
from core import cli, logs

def first(argv):
    for _ in logs.read_logs(sys.argv[1]):
        pass

def second(argv):
    raise tf.errors.UnknownError(None, None, "a failure of no input")

try:
    cli.run(first, argv=["first"], end_process=False)
except SystemExit as stop:
    print("first:", stop.code, flush=True)
try:
    cli.run(second, argv=["second"], end_process=False)
except SystemExit as stop:
    print("second:", stop.code, flush=True)
except tf.errors.UnknownError as error:
    print("second raised:", error.message, flush=True)
"""


def test_a_tensorflow_error_is_not_explained_by_an_earlier_runs_reader(tmp_path):
    """Several commands run in one process (the tests' command servers, a notebook): a
    TensorFlow error of a later run that no reader of its own explains is not put on the
    earlier run's bad file; it is the traceback it is. (A fresh process: the flags other tests
    define in theirs would be parsed here too.)"""
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp,click,dwell_time\nu1,i1,1767571200,1,3\n"
                   "u1,i2,1767571201,0\n")  # line 3: a field short, found by re-reading
    done = subprocess.run([sys.executable, "-c", TWO_RUNS, str(bad)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines() == ["first: 1", "second raised: a failure of no input"], (
        done.stdout, done.stderr)
    assert f"error: {bad}, line 3: expected 5 fields" in done.stderr


@pytest.mark.parametrize("module, args, flag", [
    ("pipelines.stats", ["--output_dir=gs://bucket/stats"], "--output_dir=gs://bucket/stats"),
    ("pipelines.label", ["--stats=gs://bucket/stats", "--output_dir=labelled"],
     "--stats=gs://bucket/stats"),
    ("report", ["--model_dirs=models/a,gs://bucket/b"], "--model_dirs=models/a,gs://bucket/b"),
])
def test_a_url_for_anything_but_the_logs_is_refused_before_any_work(run, small_world, tmp_path,
                                                                     module, args, flag):
    """Outputs, artifacts and model directories are local or mounted paths: a URL given to
    their flags ends in one line naming the flag, before any work, and no folder named "gs:"
    appears (os.path would make the URL one). The logs may be URLs: their flags pass."""
    inputs = {"pipelines.stats": [f"--input={small_world['train']}"],
              "pipelines.label": [f"--input={small_world['eval']}"], "report": []}[module]
    result = run(module, *inputs, *args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"error: {flag}: a URL; only the logs may be URLs (--input, "
                                    "--train, --eval, --validation, --gate_logs)")
    assert result.stderr.count("\n") == 1 and os.listdir(tmp_path) == []


def test_the_logs_flags_take_urls_past_the_rule():
    from core.log_files import URL_FLAGS, url_flag_problem

    assert url_flag_problem({name: "gs://bucket/day-*.csv" for name in URL_FLAGS}) is None
    assert url_flag_problem({"policies": ["a=serving/a", "b=gs://x/b"], "seed": 3}).startswith(
        "--policies=a=serving/a,b=gs://x/b: a URL;")
    assert url_flag_problem({"output_dir": "scores", "model_dirs": None, "seed": 0}) is None
    # An '=' in the URL itself (a partition path) hides nothing.
    assert url_flag_problem({"model_dir": "gs://b/run=3"}).startswith("--model_dir=gs://b/run=3")


@pytest.mark.parametrize("module, args", [
    ("pipelines.stats", ["--engine=local", "--output_dir={file}/stats"]),
    ("pipelines.simulate", ["--num_users=20", "--num_items=10", "--days=1",
                            "--output_dir={file}/sim"]),
])
def test_an_output_path_through_or_onto_a_file_is_one_line(run, small_world, tmp_path, module,
                                                          args):
    """A file where a directory is to be made (the path onto it, or through it) ended in a
    FileExistsError or NotADirectoryError traceback before 2026-12-07."""
    taken = tmp_path / "notes.txt"
    taken.write_text("mine\n")
    inputs = [f"--input={small_world['train']}"] if module == "pipelines.stats" else []
    result = run(module, *inputs, *[a.format(file=taken) for a in args])
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: a file is where a directory was to be made ("
                                    f"{taken}); give an output path that is not a file")
    assert taken.read_text() == "mine\n"


TUNING = ["--saved_model=s", "--baseline=random", "--sim=s", "--stats=s", "--output_dir=o"]


@pytest.mark.parametrize("module, args, message", [
    ("report", ["--model_dirs="], "error: --model_dirs names no model directory"),
    ("online.tune_fusion", [*TUNING, "--grid="], "error: --grid must be one or more finite "
                                                "weights"),
    ("online.tune_fusion", [*TUNING, "--grid=0,nan"], "error: --grid must be one or more finite "
                                                     "weights"),
    ("online.tune_fusion", [*TUNING, "--min_clicks=nan"], "error: --min_clicks must be a finite "
                                                         "multiple >= 0 of the baseline's"),
    ("online.tune_fusion", [*TUNING, "--min_clicks=-1"], "error: --min_clicks must be a finite "
                                                        "multiple >= 0 of the baseline's"),
    # (a warning first, then --sim=s is no simulation)
    ("online.tune_fusion", [*TUNING, "--tune_seed=3", "--report_seed=3"],
     "warning: --tune_seed and --report_seed are both 3: the report's sessions are those the "
     "weights were chosen on, so its changes are not held out\nerror: "),
    ("pipelines.stats", ["--input=x.csv", "--output_dir=o", "--ndt=paper", "--ndt_tau=5",
                         "--ndt_a=2"],
     "error: --ndt=paper takes the paper's NDT parameters as they are (offset 15 s, tau 20 s, A "
     "2.319, B 0.744); --ndt_tau, --ndt_a are not read with it: drop them, or use --ndt=auto "
     "(they override the fit) or --ndt=explicit (all four)\n"),
    ("pipelines.stats", ["--input=x.csv", "--output_dir=o", "--ndt=paper", "--ndt_epsilon=1e-4"],
     "error: --ndt_epsilon shapes the automatic NDT fit (--ndt=auto); with --ndt=paper it is "
     "not read: drop it\n"),
    ("pipelines.stats", ["--input=x.csv", "--output_dir=o", "--ndt=explicit", "--ndt_offset=15",
                         "--ndt_tau=20", "--ndt_a=2.3", "--ndt_b=0.7", "--ndt_t_max=2",
                         "--ndt_epsilon=1e-4"],
     "error: --ndt_t_max and --ndt_epsilon shape the automatic NDT fit (--ndt=auto); with "
     "--ndt=explicit they are not read: drop them\n"),
    ("pipelines.stats", ["--input=x.csv", "--output_dir=o", "--ndt_tau=20", "--ndt_epsilon=1e-4"],
     "error: --ndt_epsilon shapes the automatic NDT fit (--ndt=auto); with --ndt_tau given "
     "(epsilon only fits tau) it is not read: drop it\n"),
    ("pipelines.stats", ["--input=x.csv", "--output_dir=o", "--ndt_tau=20", "--ndt_a=2.3",
                         "--ndt_b=0.7", "--ndt_t_max=2", "--ndt_epsilon=1e-4"],
     "error: --ndt_t_max and --ndt_epsilon shape the automatic NDT fit (--ndt=auto); with "
     "--ndt_tau and --ndt_a given (t_max only fits tau and A) they are not read: "
     "drop them\n"),
    ("pipelines.stats", ["--input=x.csv", "--output_dir=o", "--ndt_tau=20", "--ndt_a=2.3",
                         "--ndt_t_max=2"],
     "error: --ndt_t_max shapes the automatic NDT fit (--ndt=auto); with --ndt_tau and --ndt_a "
     "given (t_max only fits tau and A) it is not read: drop it\n"),
    ("pipelines.validate.describe", ["--input=x.csv", "--batch_size=0"],
     "FATAL Flags parsing error: flag --batch_size=0: 0 is not a positive integer"),
    ("pipelines.score", ["--saved_model=s", "--input=x.csv", "--output=o",
                         "--max_dead_letters=-1"],
     "FATAL Flags parsing error: flag --max_dead_letters=-1: -1 is not a non-negative integer"),
    # A list flag given twice: absl kept the last, so the first day was never read.
    ("pipelines.validate.describe", ["--input=a.csv", "--input=b.csv"],
     "error: --input is given twice (--input=a.csv and --input=b.csv); only the last would be "
     "read: give one comma-separated list\n"),
    ("ranking.train", ["--model=single_ctr", "--train", "a.csv", "--stats=s", "--model_dir=m",
                       "--train=b.csv"],
     "error: --train is given twice (--train and --train=b.csv)"),
    ("ranking.train", ["--model=single_ctr", "--train=a.csv", "--stats=s", "--model_dir=m",
                       "--validation=d10.csv", "--validation=d11.csv"],
     "error: --validation is given twice"),
    ("export.saved_model", ["--model_dir=m", "--export_base=e", "--gate_logs=a.csv",
                            "--gate_logs=b.csv"],
     "error: --gate_logs is given twice"),
    # A ~ after '=' is not expanded by the shell: a directory named "~" in the working
    # directory; an empty output path was the working directory itself (before 2026-12-07).
    ("pipelines.simulate", ["--output_dir=~/sim", "--days=3"],
     "error: --output_dir=~/sim: a shell expands ~ only at the start of a word, not after '=': "
     "write --output_dir ~/... (a space, no '=') or $HOME/...\n"),
    ("pipelines.stats", ["--input=logs/a.csv,~/logs/b.csv", "--output_dir=o"],
     "error: --input=logs/a.csv,~/logs/b.csv: a shell expands ~ only at the start"),
    ("pipelines.simulate", ["--output_dir=", "--days=3"],
     "error: --output_dir is empty: name the output's path (or leave the flag out)\n"),
    ("pipelines.simulate", ["--output_dir= ", "--days=3"],
     "error: --output_dir is empty: name the output's path"),
    # (named --seed, which this tool does not define, before 2026-12-07)
    ("online.tune_fusion", [*TUNING, "--tune_seed=-1"],
     "FATAL Flags parsing error: flag --tune_seed=-1: -1 is not an integer in the range [0, "
     "9223372036854775807]"),
    # (0 took the defaults unseen, and config.json recorded 0)
    ("ranking.train", ["--model=single_ctr", "--train=x.csv", "--stats=s", "--model_dir=m",
                       "--embedding_dim=0"],
     "FATAL Flags parsing error: flag --embedding_dim=0: 0 is not a positive integer"),
    ("ranking.train", ["--model=single_ctr", "--train=x.csv", "--stats=s", "--model_dir=m",
                       "--checkpoint_every=0"],
     "FATAL Flags parsing error: flag --checkpoint_every=0: 0 is not a positive integer"),
    ("ranking.train", ["--model=single_ctr", "--train=x.csv", "--stats=s", "--model_dir=m",
                       "--learning_rate=inf"],
     "FATAL Flags parsing error: flag --learning_rate=inf: --learning_rate must be a finite "
     "number"),
])
def test_flag_values_that_ended_in_a_traceback_are_refused(run, tmp_path, module, args,
                                                           message):
    """Found by a probe of odd flag values (2026-12-07): an empty --grid ended the sweep in an
    IndexError, an empty --model_dirs in another, a batch of 0 rows in TensorFlow's error (of
    -1, a segmentation fault), --max_dead_letters=-1 and --checkpoint_every=0 in an
    IndexError and a ZeroDivisionError after training; --learning_rate=inf trained NaNs.
    Taken in silence: --min_clicks=nan (no fusion chosen, none said why), the same seed for
    tuning and report, --ndt_tau beside --ndt=paper, --ndt_t_max and --ndt_epsilon where the
    automatic fit is not run (or epsilon, beside a given tau, fits nothing)."""
    result = run(module, *args, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert os.listdir(tmp_path) == []


OUT_OF_MEMORY = """
import sys
from core import cli  # first, as in the tools: it quiets what importing TensorFlow says
import numpy as np
import tensorflow as tf
from core.atomic import atomic_directory

# 2 EiB each: past any address space, so refused whatever the host's overcommit policy.
def numpy_array(argv):
    with atomic_directory(sys.argv[1] + "/numpy"):
        np.ones(2**58)

def tensorflow_variable(argv):
    with atomic_directory(sys.argv[1] + "/tensorflow"):
        tf.Variable(tf.zeros([2**39, 2**20]))

for main in (numpy_array, tensorflow_variable):
    try:
        cli.run(main, argv=[main.__name__], end_process=False)
    except SystemExit as stop:
        print(main.__name__, stop.code, flush=True)
"""


def test_an_allocation_larger_than_the_machine_is_one_line_and_leaves_no_output(tmp_path):
    """A size flag far too large (`--embedding_dim=10**12`, `--num_users=10**12`) fails at its
    first allocation, in numpy (MemoryError) or TensorFlow (ResourceExhaustedError): one line
    saying what did not fit and what to lower, exit status 1, no output directory."""
    done = subprocess.run([sys.executable, "-c", OUT_OF_MEMORY, str(tmp_path)], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines() == ["numpy_array 1", "tensorflow_variable 1"], done.stderr
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and len(lines) == 2, done.stderr
    assert lines[0].startswith("error: out of memory: 2.00 EiB for an array of shape "
                               "(288230376151711744,) (float64) did not fit in the memory "
                               "available (this machine has ")
    assert lines[1].startswith("error: out of memory: a tensor of shape [549755813888,1048576] "
                               "(float) did not fit in the memory available (this machine has ")
    assert all("GiB); lower the sizes given to this command (" in line for line in lines)
    assert os.listdir(tmp_path) == []


NOT_A_FLAG = "(a flag starts with --, on a --flagfile's lines too), and "


@pytest.mark.parametrize("module, args, message", [
    ("ranking.train", ["--train=x.csv", "--stats=s", "--model_dir=m", "--flagfile={flagfile}"],
     f"error: 'learning_rate=0.5': not a flag {NOT_A_FLAG}this command takes no other arguments: "
     "write --learning_rate=0.5\n"),
    ("report", ["--model_dirs=a", "stray", "words"],
     f"error: 'stray', 'words': not flags {NOT_A_FLAG}this command takes no other arguments\n"),
    # `--train a.csv b.csv`: the shell expanded `--train *.csv`; absl took a.csv alone.
    ("ranking.train", ["--stats=s", "--model_dir=m", "--train", "{a}", "{b}"],
     f"error: '{{b}}': not a flag {NOT_A_FLAG}this command takes no other arguments: are they a "
     "glob the shell expanded? Quote it, as in --train='logs/*.csv'\n"),
    # A Beam tool leaves what absl does not take to Beam (beam_flags_problem).
    ("pipelines.stats", ["--input=x.csv", "--output_dir=o", "--flagfile={flagfile}"],
     f"FATAL Flags parsing error: 'learning_rate=0.5', 'noallow_unclicked_dwell': not flags "
     f"{NOT_A_FLAG}neither this command nor Apache Beam takes other arguments: write "
     "--noallow_unclicked_dwell\n"),
])
def test_an_argument_that_is_not_a_flag_is_refused(run, tmp_path, module, args, message):
    """absl passes a --flagfile line without its leading -- on as an argument: the tools that
    take no Beam options dropped `learning_rate=0.5` in a flagfile, a stray word, or the files
    after the first of a glob the shell expanded, without a word, and ran without them."""
    flagfile = tmp_path / "train.flags"
    lines = "learning_rate=0.5\n" + ("noallow_unclicked_dwell\n" if module == "pipelines.stats"
                                      else "")
    flagfile.write_text("# the learning rate\n--noallow_unclicked_dwell\n" + lines)
    for name in "ab":
        (tmp_path / f"{name}.csv").write_text("user_id\n")
    paths = {"flagfile": flagfile, "a": tmp_path / "a.csv", "b": tmp_path / "b.csv"}
    result = run(module, *[a.format(**paths) for a in args], cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith(message.format(**paths)), (
        result.stderr)
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.csv", "train.flags"]


# Sends a signal to its own process from inside a tool's step (the `call`th call of `target`),
# then runs the tool as its own program: a stop at a known point, without a race.
SIGNALLED = """
import importlib, os, runpy, signal, sys

module, target, call, signum = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
owner, name = target.rsplit(".", 1)
owner = importlib.import_module(owner)
original, calls = getattr(owner, name), []

def signalled(*args, **kwargs):
    calls.append(1)
    if len(calls) == call:
        os.kill(os.getpid(), signum)
    return original(*args, **kwargs)

setattr(owner, name, signalled)
# Ctrl-C as in a terminal's foreground job: the test runner's workers ignore SIGINT, and a
# child inherits that (Python then installs no KeyboardInterrupt handler).
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)  # (likewise, whatever ran the tests)
sys.argv = [module] + sys.argv[5:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module, target, call, signum, engine", [
    ("pipelines.stats", "pipelines.stats.statistics._preaggregate", 1, "SIGINT", "beam"),
    ("pipelines.stats", "pipelines.stats.statistics._preaggregate", 1, "SIGTERM", "beam"),
    ("pipelines.stats", "pipelines.stats.statistics._preaggregate", 1, "SIGTERM", "local"),
    ("pipelines.simulate", "pipelines.simulate.simulator.simulate_day", 2, "SIGTERM", None),
])
def test_a_signal_stops_a_tool_in_one_line_and_keeps_the_earlier_output(
        small_world, tmp_path, module, target, call, signum, engine):
    """Ctrl-C inside a Beam step came back as Beam's RuntimeError "KeyboardInterrupt [while
    running ...]": a traceback of 168 lines and status 1; SIGTERM (`kill`, a container's stop)
    ended the process silently with the output's hidden temporary directory left behind. Now:
    one `stopped:` line, a shell's status for the signal, no temporary directory, and the
    output of an earlier run as it was."""
    import signal

    out = tmp_path / "out"
    if module == "pipelines.stats":
        args = [f"--input={small_world['train']}", f"--output_dir={out}", f"--engine={engine}"]
        shutil.copytree(small_world["stats"], out)  # an earlier run's artifact
        kept = "stats.json"
    else:
        args = [f"--output_dir={out}", "--num_users=300", "--num_items=100", "--days=3",
                "--noplot"]
        out.mkdir()
        (out / "logs").mkdir()
        from pipelines.simulate.writing import GENERATOR

        # An earlier simulation's (which the run may replace).
        (out / "summary.json").write_text(json.dumps({"generator": GENERATOR}))
        kept = "summary.json"
    before = (out / kept).read_bytes()
    number = getattr(signal, signum)
    done = subprocess.run(
        [sys.executable, "-c", SIGNALLED, module, target, str(call), str(int(number)), *args],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 128 + number, (done.returncode, done.stderr[-3000:])
    word = "interrupted" if signum == "SIGINT" else "terminated"
    assert done.stderr.endswith(f"stopped: {word} ({signum})\n"), done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "while running" not in done.stderr, done.stderr
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no hidden temporary directory
    assert (out / kept).read_bytes() == before
