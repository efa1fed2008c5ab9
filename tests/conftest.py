"""Shared test set-up: quiet TensorFlow, Keras 2, and helpers to read logs in full."""

import os

import core  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two pytest-xdist workers on two cores: each worker's TensorFlow (and
    # every CLI process its tests start, which inherit this) computes on one thread, so the
    # two do not oversubscribe the cores. tf.data keeps its own pool.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The test files that take longest (real processes, many trainings), longest first (worker
# seconds in a clean clone, 2026-12-02: 195, 185, 162, 128, 66, 63, 58, 57, 46, 37, 20, ...).
# `make test` hands whole files to its two workers in collection order (--dist loadfile
# --no-loadscope-reorder): starting the long ones first leaves short files to even out the end
# of the run on both workers (xdist's own order, by number of tests, started these last).
LONGEST_FIRST = ("test_training.py", "test_distributed.py", "test_export.py",
                 "test_bad_inputs.py", "test_labels.py", "test_selection.py",
                 "test_labelling_beam.py", "test_scoring.py", "test_validation.py",
                 "test_orca_options.py", "test_metabalance.py", "test_logs.py",
                 "test_online.py", "test_simulator.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: a file's tests keep their order


def recorded_checkpoint_step(model_dir):
    """The step of the newest checkpoint in `model_dir`'s manager state file, 0 before any.

    The manager writes that file (atomically) after a checkpoint's own files, so it names what a
    resumed run starts from; a checkpoint's index file on disk may not be recorded yet.
    """
    try:
        with open(os.path.join(model_dir, "checkpoints", "checkpoint")) as handle:
            state = handle.read()
    except FileNotFoundError:
        return 0
    return int(state.split('model_checkpoint_path: "ckpt-')[1].split('"')[0])


class CommandServers:
    """`run(module, *args, cwd=None, timeout=300)`: what `python -m module args...` does, run
    in a harness process kept per command module (tests/cli_harness.py): each call
    runs the module's `main` from its flags' defaults, with its stdout, stderr and exit status
    captured as a process's would be, and TensorFlow is imported once per module and test
    worker instead of once per call (about 5 s each). Returns a CompletedProcess."""

    def __init__(self, log_dir):
        self._servers: dict = {}
        self._logs: list = []
        self._log_dir = log_dir

    def __call__(self, module, *args, cwd=None, timeout=300):
        import json
        import select

        argv = [str(a) for a in args]
        server = self._server(module)
        server.stdin.write(json.dumps({"argv": argv, "cwd": str(cwd or REPO)}) + "\n")
        server.stdin.flush()
        ready, _, _ = select.select([server.stdout], [], [], timeout)
        line = server.stdout.readline() if ready else ""
        if not line:
            server.kill()
            del self._servers[module]
            log = self._log_dir / f"{module}.log"
            pytest.fail(f"the harness for {module} {'timed out' if not ready else 'died'} on "
                        f"{argv}: {log.read_text()[-3000:] if log.exists() else ''}")
        result = json.loads(line)
        # An escaped exception ends as a process would: its traceback on stderr, status 1.
        code = 1 if result["code"] == "exception" else result["code"]
        return subprocess.CompletedProcess([sys.executable, "-m", module, *argv], code,
                                           result["stdout"], result["stderr"])

    def _server(self, module):
        if module not in self._servers:
            env = dict(os.environ, PYTHONPATH=REPO)
            log = open(self._log_dir / f"{module}.log", "w")
            self._logs.append(log)
            self._servers[module] = subprocess.Popen(
                [sys.executable, os.path.join(REPO, "tests", "cli_harness.py"), module],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                cwd=REPO, env=env)
        return self._servers[module]

    def close(self):
        # Every result is in: a server may still hold threads a command left (Beam's), which
        # would keep its interpreter from exiting, so it is stopped rather than waited for.
        for server in self._servers.values():
            server.kill()
            server.wait()
            server.stdin.close()
            server.stdout.close()
        for log in self._logs:
            log.close()


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """Runs a command module as a user would (`run(module, *args)`), through CommandServers:
    the same main, flags, output and exit status, one start-up per module."""
    servers = CommandServers(tmp_path_factory.mktemp("command_servers"))
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A small simulated feed: 6 days; stats of days 0-3; train on days 0-3, evaluate on 4-5.

    Returns a dict with `root`, `train` and `eval` globs and the `stats` directory."""
    from pipelines.simulate import world_config, writing
    from pipelines.stats import statistics

    root = tmp_path_factory.mktemp("world")
    config = world_config.SimConfig(num_users=1500, num_items=600, days=6, seed=11)
    writing.write_simulation(config, str(root / "sim"), plot=False)
    train = str(root / "sim/logs/day-0[0-3].csv.gz")
    statistics.compute_stats(train, str(root / "stats"))
    return {"root": root, "train": train, "eval": str(root / "sim/logs/day-0[4-5].csv.gz"),
            "stats": str(root / "stats")}


# The simulator's post-click features (pipelines.simulate.simulator.POST_CLICK_FEATURES).
POST_CLICK = ("category", "item_length", "publish_age_hours")


class Lazy:
    """A session cache {key: value} that makes each value on first use (so `-k ple` trains
    and exports only the models its tests need)."""

    def __init__(self, make):
        self._make, self._values = make, {}

    def __getitem__(self, key):
        if key not in self._values:
            self._values[key] = self._make(key)
        return self._values[key]


@pytest.fixture(scope="session")
def trained(small_world, tmp_path_factory):
    """Briefly trained model directories, made on first use: trained[preset] -> model_dir."""
    from ranking import training
    from ranking.models import ModelConfig

    root = tmp_path_factory.mktemp("models")

    def train(preset):
        config = training.TrainConfig(train=small_world["train"], stats=small_world["stats"],
                                      model=ModelConfig(preset), batch_size=256, epochs=1,
                                      steps_per_epoch=5, progress="none",
                                      post_click_features=POST_CLICK)
        training.train_and_evaluate(config, str(root / preset))
        return str(root / preset)

    return Lazy(train)


@pytest.fixture(scope="session")
def exports(trained, tmp_path_factory):
    """Trained presets exported as version 1, on first use: exports[preset] -> ExportResult."""
    from export import exporter

    base = tmp_path_factory.mktemp("serving")
    return Lazy(lambda preset: exporter.export_saved_model(trained[preset], str(base / preset)))


def _presets():
    from ranking.models import PRESETS

    return list(PRESETS)


@pytest.fixture(scope="session", params=_presets())
def preset(request):
    """Each model preset in turn (tests taking it run once per preset: `-k ple` picks one)."""
    return request.param
