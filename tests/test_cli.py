"""core.cli's end of a process: a tool run from its own command line ends as soon as it exits,
with its status, its buffered output and its exit handlers, without the interpreter's teardown;
a success waits for another thread still running, a failure does not; a tool run in-process
(`argv` given: tests/cli_harness.py) raises SystemExit as before.

The small programs run in fresh processes without PYTHONUNBUFFERED, so that stdout is buffered
as it is for a user's pipe."""

import glob
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

PROGRAM = """
import atexit, os, sys, threading, time
from core import cli
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

cli.run(main, argv=None if "own" in sys.argv else [sys.argv[0]])
"""


def _run(tmp_path, body: str, *flags: str):
    """(exit status, stdout, stderr, marks left) of PROGRAM with `body` as main's."""
    script = tmp_path / "tool.py"
    script.write_text(PROGRAM.format(body=textwrap.indent(textwrap.dedent(body), "    ")))
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = REPO
    # A process that waits for the endless thread below runs into the timeout: the test fails.
    done = subprocess.run([sys.executable, str(script), str(marks), *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
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
        forever = threading.Event()
        threading.Thread(target=forever.wait, name="background read").start()
        print("counting", end="")
        raise InputError("expected 0 or 1, found 3", file="eval.csv", row=4, column="click")
        """, "own")
    assert code == 1
    assert out == "counting"
    assert err.strip() == "error: eval.csv, line 4, column 'click': expected 0 or 1, found 3"
    assert marks == ["atexit"]


def test_a_success_waits_for_another_thread_as_python_does(tmp_path):
    code, out, err, marks = _run(tmp_path, """
        threading.Thread(target=lambda: (time.sleep(0.5), mark("thread"))).start()
        """, "own")
    assert code == 0, err
    assert marks == ["atexit", "teardown", "thread"]


def test_a_message_given_to_exit_goes_to_stderr_with_status_1(tmp_path):
    code, out, err, marks = _run(tmp_path, 'sys.exit("no model directory")', "own")
    assert (code, out, err.strip(), marks) == (1, "", "no model directory", ["atexit"])


def test_the_training_command_ends_with_its_summaries_written(small_world, tmp_path):
    """The real thing: TensorBoard's event files (flushed by their writers, not by the
    teardown) hold the training and evaluation scalars when the process has ended."""
    from tensorflow.core.util import event_pb2
    import tensorflow as tf

    model_dir = tmp_path / "model"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-m", "ranking.train", "--model=single_ctr",
         f"--train={small_world['train']}", f"--eval={small_world['eval']}",
         f"--stats={small_world['stats']}", "--steps_per_epoch=4", "--log_every=2",
         "--progress=epoch", f"--model_dir={model_dir}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.rstrip().endswith(f"wrote {model_dir}/eval_metrics.json")

    def tags(kind):
        (path,) = glob.glob(str(model_dir / "logs" / kind / "events.out.tfevents.*"))
        return {(value.tag, event.step)
                for record in tf.data.TFRecordDataset(path).as_numpy_iterator()
                for event in [event_pb2.Event.FromString(record)]
                for value in event.summary.value}

    assert {("loss/loss", 2), ("loss/loss", 4)} <= tags("train")
    assert {("auc_ctr", 4), ("auc_valid_read", 4)} <= tags("eval")
