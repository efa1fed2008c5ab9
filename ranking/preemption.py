"""SIGTERM and Ctrl-C during training: the step in flight finishes, a checkpoint is written at
it, and the process ends (status 143 or 130), so that the same command resumes exactly there.

A preemptible machine (a spot VM, an evicted Kubernetes pod) gets SIGTERM and some seconds of
grace before SIGKILL. Ended at once, a run loses the steps since its last checkpoint (up to
--checkpoint_every of them, and a validation's work). A single training process instead
handles SIGTERM and SIGINT itself for the whole of `train_and_evaluate` (`handled`):

- in the training loop (`checkpointing`, `ranking.loops`) the signal is a request: the loop
  ends after its current step (or the validation that step began), writes a checkpoint at that
  step at once unless the newest is there, and raises `core.errors.Stopped`; the tool prints
  one `stopped:` line and exits with 128 + the signal's number (143, or 130 for Ctrl-C). More
  SIGTERMs while it saves change nothing; a second Ctrl-C ends it at once (KeyboardInterrupt);
- outside the loop (start-up from before TensorFlow's import, reading the logs, the rows
  cache, the refit pass, evaluation), where a re-run redoes whatever is lost, SIGTERM ends the
  process at once with one line and status 143 (a shell's for a process SIGTERM ended); the
  handler does it itself because the kernel drops a
  signal left at its default action for a container's PID 1 (a pod without an init), which
  would otherwise train on into SIGKILL. Ctrl-C raises KeyboardInterrupt there, as usual.

The tasks of a multi-worker mirrored cluster handle the signals alike, and agree on the step to
stop at (`ranking.loops`): each step's all-reduce carries every task's "asked to stop", so
every task ends after the same step, all write the checkpoint there together (the chief's
directory keeps it), and each exits with the status of the signal (143, or 130; a task that was
not signalled itself with 143 and "another task of the cluster was asked to stop"). A signal
that arrives too late for the loop's last step to carry it is one outside the loop. TensorFlow's
own PreemptionCheckpointHandler is not used: it keeps its own checkpoints and ends the process
its way. A parameter-server cluster's chief, which runs the loop, stops scheduling steps,
counts the ones scheduled before (they train on the workers), and checkpoints after them
(unless they do not finish within DRAIN_SECONDS: its workers were stopped too, and it ends at
once); its workers and ps tasks keep the default actions (`ranking.distribute`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Whether the loop was asked to stop: `signal_name` ("SIGTERM", "SIGINT") or None;
    `by_peer`: the request is another task's, which a cluster's step carried here."""

    def __init__(self):
        self.signal_name: str | None = None
        self.by_peer = False

    def from_peer(self) -> None:
        """Another task of the cluster was asked to stop (a step's all-reduce said so)."""
        if self.signal_name is None:
            self.signal_name, self.by_peer = "SIGTERM", True

    def __bool__(self) -> bool:
        return self.signal_name is not None


def _say(line: str) -> None:
    """One line on stderr from a signal handler: os.write, not print (the main thread may be
    inside a write to stderr, which print would then enter again)."""
    try:
        os.write(sys.stderr.fileno(), (line + "\n").encode())
    except (OSError, ValueError):
        pass


def _end_at_once(signum, frame):
    _say(f"stopped: {signal.Signals(signum).name} outside training's loop (start-up, reading "
         "the logs, the refit pass or evaluation), which ended at once; the same command "
         "resumes from the newest checkpoint")
    os._exit(128 + signum)


def end_at_once_on_sigterm() -> None:
    """SIGTERM ends the process at once with one line and status 143 (a shell's status for a
    process SIGTERM ended), also as a container's PID 1. `ranking.train` calls it before
    TensorFlow loads, so that a notice during its import or start-up is not lost; `handled`
    takes over later, and a cluster's task gets the default back before its strategy or
    server (`ranking.distribute`). In the main thread only, and not where SIGTERM is ignored
    (inherited)."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN):
        signal.signal(signal.SIGTERM, _end_at_once)


class _Handler:
    """The handler `handled` installs; `request` is the loop's while it runs (`checkpointing`)."""

    def __init__(self):
        self.request: StopRequest | None = None

    def __call__(self, signum, frame):
        name = signal.Signals(signum).name
        request = self.request
        if request is not None:
            if request and not request.by_peer and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: at once
            if not request or request.by_peer:  # (a peer's request: this task's first signal)
                request.signal_name, request.by_peer = name, False
                if signum == signal.SIGINT:  # (a person waits: say it was heard)
                    _say("stopping after the step in flight, with a checkpoint (Ctrl-C again: "
                         "at once)")
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        _end_at_once(signum, frame)


_handler: _Handler | None = None


@contextlib.contextmanager
def handled(enabled: bool):
    """Within the block (a training call, when `enabled`), SIGTERM and SIGINT are handled as
    the module docstring says; the handlers before it are put back at
    its end. Only in the main thread, where Python runs signal handlers."""
    global _handler
    if not enabled or _handler is not None or (
            threading.current_thread() is not threading.main_thread()):
        yield
        return
    handler = _Handler()
    # (A signal ignored as inherited, Ctrl-C for a job a script started in the background,
    # stays ignored.)
    previous = {number: signal.signal(number, handler) for number in _SIGNALS
                if signal.getsignal(number) is not signal.SIG_IGN}
    _handler = handler
    try:
        yield
    finally:
        _handler = None
        for number, action in previous.items():
            signal.signal(number, action)


@contextlib.contextmanager
def checkpointing():
    """The training loop's block: yields the `StopRequest` that SIGTERM or SIGINT sets while it
    runs (within `handled`; elsewhere one that nothing sets)."""
    request = StopRequest()
    handler = _handler
    if handler is None:
        yield request
        return
    handler.request = request
    try:
        yield request
    finally:
        if not request:  # (a stopped run's later SIGTERMs, while it unwinds, are that request's)
            handler.request = None


def end_at_once(request: StopRequest, why: str | None = None) -> None:
    """Ends the process with one line and 128 + the signal's number, as a signal outside
    training's loop does (a cluster's task asked after the loop's last step, which no step
    carried to the others), or saying `why` no checkpoint could be written."""
    signum = int(signal.Signals[request.signal_name])
    if why is None:
        _end_at_once(signum, None)
    _say(f"stopped: {request.signal_name}, and {why}: ended at once without a checkpoint; the "
         "same command resumes from the newest checkpoint")
    os._exit(128 + signum)


def status(request: StopRequest) -> int:
    """The exit status of a process `request` stopped: 128 + the signal's number."""
    return 128 + int(signal.Signals[request.signal_name])
