"""What every command-line tool shares: quiet TensorFlow, readable errors, exit status.

Import this module before TensorFlow in a tool's `__main__` module: it sets
`TF_CPP_MIN_LOG_LEVEL` so TensorFlow's start-up chatter stays out of the tool's own output.
"""

from __future__ import annotations

import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The same for processes the tools start (Beam's multi-processing workers).
os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")

# Library chatter at import time (e.g. google.api_core's Python-version notice) is not ours.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

from absl import app, flags, logging  # noqa: E402

from core.errors import InputError, quiet_input_error_logs  # noqa: E402


def report(error: InputError) -> None:
    print(f"error: {error}", file=sys.stderr)


def run(main, *, pass_unknown_flags: bool = False, argv: list[str] | None = None) -> None:
    """Runs an absl `main(argv)`; bad input ends in one readable line and exit status 1.

    With `pass_unknown_flags`, flags this program does not define reach `main` in `argv[1:]`
    (Beam pipeline options such as --runner or --direct_num_workers) instead of failing.
    `argv` defaults to sys.argv.
    """

    def guarded(argv):
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        logging.set_verbosity(logging.ERROR)
        quiet_input_error_logs()
        try:
            return main(argv)
        except InputError as error:
            report(error)
            sys.exit(1)
        except Exception as error:  # TensorFlow errors raised while reading input
            translated = _translate(error)
            if translated is None:
                raise
            report(translated)
            sys.exit(1)

    if pass_unknown_flags:
        app.run(guarded, argv=argv,
                flags_parser=lambda args: flags.FLAGS(args, known_only=True))
    else:
        app.run(guarded, argv=argv)


def _translate(error: Exception) -> InputError | None:
    if "tensorflow" not in sys.modules:
        return None
    from core import log_diagnosis

    return log_diagnosis.translate_error(error)
