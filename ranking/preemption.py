"""SIGTERM during training: the step in flight finishes, a checkpoint is written at it, and the
process ends with status 143, so that the same command resumes exactly where it stopped.

A preemptible machine (a spot VM, an evicted Kubernetes pod) gets SIGTERM and some seconds of
grace before SIGKILL. Ended at once, a run loses the steps since its last checkpoint (up to
--checkpoint_every of them, and a validation's work); asked to stop instead, the training loop
of a single process (`ranking.loops`) ends after its current step (or the validation that step
began), writes a checkpoint at that step unless it has just written one, and raises
`core.errors.Stopped`; the command-line tool prints one `stopped:` line and exits with 143
(128 + 15, what a shell reports for a process SIGTERM ended).

Outside the loop (reading the logs, the refit pass, evaluation) SIGTERM ends the process as it
would by default: nothing there is lost that a re-run does not redo. The tasks of a cluster
keep the default too (`ranking.distribute`): its tasks would have to agree on one step to
checkpoint at (TensorFlow's PreemptionCheckpointHandler), which training does not use.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class StopRequest:
    """Whether the process was asked to stop: `signal_name` ("SIGTERM") or None."""

    def __init__(self):
        self.signal_name: str | None = None

    def __bool__(self) -> bool:
        return self.signal_name is not None


@contextlib.contextmanager
def stop_on_sigterm(enabled: bool):
    """Within the block, SIGTERM sets the yielded `StopRequest` instead of ending the process
    (when `enabled`, and only in the main thread, where Python runs signal handlers); the
    handler before it is put back at the block's end. A request that came while the block ran
    stays set after it: the caller stops then."""
    request = StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield request
        return

    def asked_to_stop(signum, frame):
        request.signal_name = signal.Signals(signum).name

    previous = signal.signal(signal.SIGTERM, asked_to_stop)
    try:
        yield request
    finally:
        signal.signal(signal.SIGTERM, previous)
