"""ranking.train: learning, eval_metrics.json, resuming after SIGKILL, model-dir safety."""

import dataclasses
import glob
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from core.errors import InputError
from ranking import evaluation, input_notes, training
from ranking.models import ModelConfig
from ranking.optimizers import OptimizerConfig

from conftest import REPO, recorded_checkpoint_step

SIX_KEYS = {"auc_ctr", "auc_valid_read", "rows", "clicks", "valid_reads", "towers", "preset"}


def config_for(world, preset="vr_ndt", **overrides):
    options = dict(train=world["train"], eval=world["eval"], stats=world["stats"],
                   model=ModelConfig(preset), batch_size=256, epochs=2, seed=1,
                   checkpoint_every=50, progress="none")
    options.update(overrides)
    return training.TrainConfig(**options)


@pytest.fixture(scope="module")
def label_shards(small_world, tmp_path_factory):
    """The glob of the label job's TFRecord shards of the small world's training logs (read
    only by the tests)."""
    from pipelines.label import labelling

    shards = tmp_path_factory.mktemp("label_shards")
    labelling.label_logs(small_world["train"], small_world["stats"], str(shards),
                         fmt="tfrecord")
    return str(shards / "*.tfrecord.gz")


def test_the_label_jobs_tfrecord_shards_train_the_model_the_raw_logs_train(small_world,
                                                                           label_shards,
                                                                           tmp_path):
    """The label job's TFRecord shards of the CSV training logs build the same model (its
    features in the logs' order, not the tf.Example's by name) and train it to the same
    metrics at the same seed."""
    config = config_for(small_world, "single_ctr", epochs=1, steps_per_epoch=20)
    raw = training.train_and_evaluate(config, str(tmp_path / "raw"))
    shards = training.train_and_evaluate(dataclasses.replace(config, train=label_shards),
                                         str(tmp_path / "from_shards"))
    features = [json.load(open(tmp_path / d / "config.json"))["features"]
                for d in ("raw", "from_shards")]
    assert [f["name"] for f in features[0]] == [f["name"] for f in features[1]]
    assert shards["auc_ctr"] == pytest.approx(raw["auc_ctr"], abs=1e-6)
    assert shards["logloss_ctr"] == pytest.approx(raw["logloss_ctr"], abs=1e-6)


def test_a_directory_trained_on_tfrecord_with_features_by_name_resumes(small_world,
                                                                       label_shards, tmp_path,
                                                                       monkeypatch):
    """A model directory trained on TFRecord input when its features came by name (before
    they followed the stats artifact's logs) resumes with its own feature order, not refused
    as another model."""
    from ranking import data

    config = config_for(small_world, "single_ctr", epochs=2, steps_per_epoch=5, eval=None,
                        train=label_shards)
    with monkeypatch.context() as old:
        old.setattr(data, "_in_artifact_order", lambda source, artifact: source)
        training.train_and_evaluate(dataclasses.replace(config, epochs=1),
                                    str(tmp_path / "model"))
    by_name = json.load(open(tmp_path / "model/config.json"))["features"]
    assert [f["name"] for f in by_name][2:] == sorted(f["name"] for f in by_name[2:])
    training.train_and_evaluate(config, str(tmp_path / "model"))
    assert json.load(open(tmp_path / "model/config.json"))["features"] == by_name
    assert os.path.isfile(tmp_path / "model/checkpoints/ckpt-10.index")  # 5 steps more


def test_short_training_learns(small_world, tmp_path):
    model_dir = str(tmp_path / "vr_ndt")
    metrics = training.train_and_evaluate(config_for(small_world), model_dir)
    # Position alone gives about 0.54 here; the simulator's best possible (true p_click) ~0.75.
    assert metrics["auc_valid_read"] > 0.6, metrics
    assert metrics["auc_ctr"] > 0.6, metrics
    on_disk = json.load(open(os.path.join(model_dir, "eval_metrics.json")))
    assert SIX_KEYS | {"logloss_valid_read", "logloss_weighted_valid_read"} <= set(on_disk)
    assert on_disk["auc_valid_read"] == metrics["auc_valid_read"]
    description = json.load(open(os.path.join(model_dir, "config.json")))
    assert description["model"]["preset"] == "vr_ndt"
    assert [f["name"] for f in description["features"]][:2] == ["user_id", "item_id"]
    assert glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-*.index"))
    assert glob.glob(os.path.join(model_dir, "logs", "train", "events.out.tfevents.*"))

    # The same command again resumes at the end: no extra step, same metrics.
    again = training.train_and_evaluate(config_for(small_world), model_dir)
    assert again["global_step"] == metrics["global_step"]
    assert again["auc_valid_read"] == pytest.approx(metrics["auc_valid_read"], abs=1e-9)

    # A baseline's metrics give RelaImpr, and a log-dwell model adds the dwell metrics.
    other = training.train_and_evaluate(
        config_for(small_world, "ctr_logdt", epochs=1, steps_per_epoch=20,
                   baseline_metrics=os.path.join(model_dir, "eval_metrics.json")),
        str(tmp_path / "ctr_logdt"))
    # (At an AUC of exactly 0.5, constant scores, RelaImpr is -100 whatever the baseline.)
    assert other["auc_valid_read"] != pytest.approx(0.5, abs=1e-6)
    expected = ((other["auc_valid_read"] - 0.5) / (metrics["auc_valid_read"] - 0.5) - 1) * 100
    assert other["rel_impr"]["auc_valid_read"] == pytest.approx(expected, rel=1e-9)
    assert other["rel_impr"]["baseline"] == "vr_ndt"
    assert {"log_dwell_rmse", "dt_mae_class", "dt_weighted_f1",
            "dt_bias_by_ctr_decile"} <= set(other)


def test_model_dir_of_another_model_is_refused(small_world, tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a dwellrank model directory"):
        training.train_and_evaluate(config_for(small_world), str(model_dir))
    trained = str(tmp_path / "trained")
    training.train_and_evaluate(config_for(small_world, epochs=1, steps_per_epoch=3, eval=None),
                                trained)
    with pytest.raises(InputError, match="holds another model.*model"):
        training.train_and_evaluate(config_for(small_world, "single_ctr", epochs=1,
                                               steps_per_epoch=3, eval=None), trained)


def _cli(args, **kwargs):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.Popen([sys.executable, "-m", "ranking.train", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_sigkill_resumes_from_the_checkpoint_and_matches_an_uninterrupted_run(small_world,
                                                                             tmp_path):
    """Killed in training and again in validation, with early stopping's state and the best
    checkpoint in play: the resumed run ends at the model an uninterrupted run ends at."""
    flagfile = tmp_path / "train.flags"
    flagfile.write_text("\n".join([
        "--model=vr_ndt", f"--train={small_world['train']}", f"--eval={small_world['eval']}",
        f"--stats={small_world['stats']}", "--batch_size=128", "--max_epochs=2",
        "--steps_per_epoch=120", "--checkpoint_every=20", "--keep_checkpoints=2",
        "--validation_days=1", "--validate_every=40", "--patience=10",
        "--deterministic", "--progress=epoch", "--seed=4"]) + "\n")
    killed_dir = str(tmp_path / "killed")
    process = _cli([f"--flagfile={flagfile}", f"--model_dir={killed_dir}"])
    deadline = time.time() + 240
    # Kill in the second epoch, so that resuming must also keep the finished first epoch.
    while time.time() < deadline and recorded_checkpoint_step(killed_dir) <= 130:
        if process.poll() is not None:
            pytest.fail("training ended before it could be killed:\n" + process.stderr.read())
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    last = recorded_checkpoint_step(killed_dir)
    assert 120 < last < 240

    # Resumed, then killed again as soon as it starts validating at step 200.
    resumed = _cli([f"--flagfile={flagfile}", f"--model_dir={killed_dir}"])
    lines = []
    for line in resumed.stdout:
        lines.append(line)
        if line.startswith("validating at step 200"):
            resumed.send_signal(signal.SIGKILL)
            break
    resumed.wait()
    out = "".join(lines)
    assert f"global step {last}, epoch 2, {last - 120} batches into it" in out, out
    assert "epoch 1/2" not in out  # the first epoch is not trained again
    assert lines[-1].startswith("validating at step 200"), out
    history = json.load(open(os.path.join(killed_dir, "history.json")))
    assert history["validations"][-1]["step"] < 200  # killed before recording it

    again = _cli([f"--flagfile={flagfile}", f"--model_dir={killed_dir}"])
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "epoch 2/2" in out and "validation at step 240" in out, out

    whole_dir = str(tmp_path / "whole")
    whole = _cli([f"--flagfile={flagfile}", f"--model_dir={whole_dir}"])
    whole_out, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err
    killed = json.load(open(os.path.join(killed_dir, "eval_metrics.json")))
    uninterrupted = json.load(open(os.path.join(whole_dir, "eval_metrics.json")))
    assert killed["global_step"] == uninterrupted["global_step"] == 240
    assert killed["selection"] == uninterrupted["selection"]
    for name in ("history.json", "best.json"):
        assert (json.load(open(os.path.join(killed_dir, name)))
                == json.load(open(os.path.join(whole_dir, name)))), name
    # Same batches in the same order from the same state: the same model.
    for key in ("auc_valid_read", "auc_ctr", "logloss_valid_read"):
        assert killed[key] == pytest.approx(uninterrupted[key], rel=1e-6), key


def _signal_at_step(monkeypatch, number: int, signum):
    """Makes training's steps raise `signum` in this (the main) thread as step `number` returns
    (once), so that the step a signal arrives at is known; returns the handlers it found then.
    The signal is unblocked and its handler the default first: a pytest worker may inherit
    either from the tests it ran before (one run of the suite found SIGINT not delivered)."""
    from ranking import loops

    real, sent, found = loops._make_synchronous_steps, [], []
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    # (A process's usual handler, which `ranking.preemption` replaces while it trains.)
    signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                  else signal.SIG_DFL)

    def signalling(run):
        run_batches = real(run)

        def batches_then_signal(batches, first_step, stop=None):
            for step, losses in enumerate(run_batches(batches, first_step, stop),
                                          start=first_step):
                if step == number and not sent:
                    sent.append(step)
                    found.append(signal.getsignal(signum))
                    signal.raise_signal(signum)
                yield losses

        return batches_then_signal

    monkeypatch.setattr(loops, "_make_synchronous_steps", signalling)
    return found


def test_sigterm_stops_training_at_a_checkpointed_step_that_resumes_exactly(small_world,
                                                                          tmp_path,
                                                                          monkeypatch):
    """SIGTERM in the loop (here sent by the process to itself as its 37th step returns, so
    the step is known), and twice more while the stop's checkpoint is written: the run ends
    after that step with `Stopped`, its checkpoint at step 37 (not one of --checkpoint_every's),
    the handlers before it back in place and the run marked unfinished; the same call then
    resumes to the model an uninterrupted run ends at."""
    from core.errors import Stopped
    from ranking import loops
    from ranking import model_dir as model_dir_lib

    _signal_at_step(monkeypatch, 37, signal.SIGTERM)
    real_checkpoint = loops._checkpoint_now

    def impatient(run):  # a scheduler that repeats its notice
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        real_checkpoint(run)

    monkeypatch.setattr(loops, "_checkpoint_now", impatient)
    # (Not --deterministic: op determinism stays on in the process, and slows tf.data's
    # threads for the tests after this one; one op thread keeps these sums in order.)
    config = config_for(small_world, epochs=2, steps_per_epoch=30, checkpoint_every=20)
    stopped_dir = str(tmp_path / "stopped")
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(Stopped, match=r"SIGTERM at global step 37 \(epoch 2, 7 batches into "
                                      r"it\); its checkpoint is .*ckpt-37: the same command") as stop:
        training.train_and_evaluate(config, stopped_dir)
    assert stop.value.status == 143
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert recorded_checkpoint_step(stopped_dir) == 37
    assert os.path.exists(os.path.join(stopped_dir, model_dir_lib.TRAINING_MARK))
    assert not os.path.exists(os.path.join(stopped_dir, "eval_metrics.json"))

    monkeypatch.undo()
    resumed = training.train_and_evaluate(config, stopped_dir)
    whole = training.train_and_evaluate(config, str(tmp_path / "whole"))
    assert resumed["global_step"] == whole["global_step"] == 60
    for key in ("auc_valid_read", "auc_ctr", "logloss_valid_read"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-6), key
    assert not os.path.exists(os.path.join(stopped_dir, model_dir_lib.TRAINING_MARK))


def test_a_peer_s_stop_leaves_this_task_s_first_ctrl_c_a_request():
    """A cluster's task that a peer's request stopped (its step's all-reduce said so) is still
    saving: its own first Ctrl-C then is a request, as anywhere, and only a second ends it."""
    from ranking import preemption

    handler, request = preemption._Handler(), preemption.StopRequest()
    handler.request = request
    request.from_peer()
    assert (request.signal_name, request.by_peer) == ("SIGTERM", True)
    handler(signal.SIGINT, None)
    assert (request.signal_name, request.by_peer) == ("SIGINT", False)
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGINT, None)
    # A task's own request stays its own when the step then carries it back.
    request.from_peer()
    assert (request.signal_name, request.by_peer) == ("SIGINT", False)


def test_ctrl_c_stops_at_a_checkpointed_step_and_a_second_one_at_once(small_world, tmp_path,
                                                                     monkeypatch):
    """Ctrl-C (SIGINT) in the loop is a stop request as SIGTERM is (status 130); a second
    Ctrl-C while the stop's checkpoint is written raises KeyboardInterrupt at once."""
    from core.errors import Stopped
    from ranking import loops

    found = _signal_at_step(monkeypatch, 5, signal.SIGINT)
    config = config_for(small_world, "single_ctr", epochs=1, steps_per_epoch=12,
                        checkpoint_every=100, eval=None)
    with pytest.raises(Stopped, match=r"SIGINT at global step 5 \(epoch 1, 5 batches") as stop:
        training.train_and_evaluate(config, str(tmp_path / "once"))
    assert type(found[0]).__name__ == "_Handler", found
    assert stop.value.status == 130
    assert recorded_checkpoint_step(str(tmp_path / "once")) == 5

    monkeypatch.undo()
    _signal_at_step(monkeypatch, 5, signal.SIGINT)
    real_checkpoint = loops._checkpoint_now

    def again(run):
        os.kill(os.getpid(), signal.SIGINT)
        real_checkpoint(run)

    monkeypatch.setattr(loops, "_checkpoint_now", again)
    with pytest.raises(KeyboardInterrupt):
        training.train_and_evaluate(config, str(tmp_path / "twice"))
    assert recorded_checkpoint_step(str(tmp_path / "twice")) == 0


SIGTERM_IN_EVALUATION = r'''
import os, signal, sys
from core import cli
from ranking import train, training

def evaluate_after_sigterm(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    print("evaluated after SIGTERM", flush=True)

training._evaluate_and_write = evaluate_after_sigterm
sys.argv = ["ranking.train", *sys.argv[1:]]
cli.run(train.main)
'''


def test_sigterm_outside_the_loop_ends_the_process_at_once(small_world, tmp_path):
    """SIGTERM during evaluation (sent by the process itself, so the moment is known) ends the
    process at once, as the signal's default action would, with one line and status 143: the
    handler does it itself, for a container's PID 1, where the kernel drops a signal left at
    its default. The run's checkpoint is there; nothing after the signal ran."""
    model_dir = str(tmp_path / "m")
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_IN_EVALUATION, "--model=single_ctr",
         f"--train={small_world['train']}", f"--eval={small_world['eval']}",
         f"--stats={small_world['stats']}", "--batch_size=256", "--steps_per_epoch=6",
         "--progress=none", f"--model_dir={model_dir}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip() == (
        "stopped: SIGTERM outside training's loop (start-up, reading the logs, the refit pass "
        "or evaluation), which ended at once; the same command resumes from the newest "
        "checkpoint"), done.stderr
    assert "evaluated after SIGTERM" not in done.stdout
    assert recorded_checkpoint_step(model_dir) == 6


def test_sigterm_to_the_training_command_prints_one_line_and_exits_143(small_world, tmp_path):
    """The command-line tool asked to stop mid-epoch: one `stopped:` line naming the step and
    its checkpoint, which is the newest recorded, exit status 143, no traceback."""
    model_dir = str(tmp_path / "m")
    process = _cli(["--model=single_ctr", f"--train={small_world['train']}",
                    f"--stats={small_world['stats']}", "--batch_size=8", "--epochs=1",
                    "--checkpoint_every=25", "--progress=none", f"--model_dir={model_dir}"])
    deadline = time.time() + 240
    while time.time() < deadline and recorded_checkpoint_step(model_dir) < 25:
        if process.poll() is not None:
            pytest.fail("training ended before it could be stopped:\n" + process.stderr.read())
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    match = re.fullmatch(r"stopped: SIGTERM at global step (\d+) \(epoch 1, (\d+) batches into "
                         r"it\); its checkpoint is (.*): the same command resumes from there",
                         lines[0])
    assert match, err
    step = int(match[1])
    assert step == int(match[2]) >= 25  # (25 when it came as that checkpoint was recorded)
    assert match[3] == os.path.join(model_dir, "checkpoints", f"ckpt-{step}")
    assert recorded_checkpoint_step(model_dir) == step


MIRRORED = r'''
import json, os, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from ranking import training
from ranking.models import ModelConfig
train, stats, eval_, out = sys.argv[1:5]
for strategy in sys.argv[5:]:  # one after the other in this process (one start-up)
    config = training.TrainConfig(train=train, eval=eval_, stats=stats,
                                  model=ModelConfig("vr_ndt"), batch_size=256, epochs=1,
                                  steps_per_epoch=20, seed=3, strategy=strategy,
                                  progress="epoch", deterministic=True)
    metrics = training.train_and_evaluate(config, os.path.join(out, strategy))
    print(json.dumps({strategy: metrics}), flush=True)
'''


def test_mirrored_on_two_cpu_replicas_equals_one_device(small_world, tmp_path):
    """Each replica divides its loss sums by the global batch, so two replicas with half a
    batch each take the same steps as one device with the whole batch."""
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, str(script), small_world["train"],
                           small_world["stats"], small_world["eval"], str(tmp_path),
                           "default", "mirrored"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            results.update(json.loads(line))
    assert sorted(results) == ["default", "mirrored"]
    assert done.stdout.count("mirrored: 2 replicas in sync") == 1  # the second run's
    for key in ("auc_valid_read", "auc_ctr", "logloss_valid_read", "logloss_weighted_valid_read"):
        assert results["mirrored"][key] == pytest.approx(results["default"][key], rel=1e-5), key


def test_embedding_optimizer_trains_resumes_and_belongs_to_the_model(small_world, tmp_path):
    model_dir = str(tmp_path / "m")
    options = dict(eval=None, epochs=1, steps_per_epoch=3, optimizer=OptimizerConfig(
        embedding_optimizer="sgd", embedding_learning_rate=5.0))
    training.train_and_evaluate(config_for(small_world, **options), model_dir)
    # A second epoch resumes from the checkpoint with the composite optimizer's slots.
    metrics = training.train_and_evaluate(
        config_for(small_world, **dict(options, epochs=2, eval=small_world["eval"])), model_dir)
    assert metrics["global_step"] == 6
    with pytest.raises(InputError, match=r"holds another model \(its config.json differs in: "
                       r"training.optimizer.embedding_learning_rate, "
                       r"training.optimizer.embedding_optimizer\)"):
        training.train_and_evaluate(config_for(small_world, **dict(
            options, optimizer=OptimizerConfig(embedding_optimizer="adagrad"))), model_dir)


def test_resuming_a_directory_trained_before_defaults_were_read_in_training_says_so(
        small_world, tmp_path, capsys):
    """A directory whose checkpoints predate training_days.json (written since missing values
    read as the feature config's default in training) and whose model sets a default: the
    resumed run says its checkpoints read 0 there. A directory of today's training does not."""
    import json as json_lib

    config_path = tmp_path / "features.json"
    config_path.write_text(json_lib.dumps({"features": {"item_length": {"default": 500}}}))
    options = dict(eval=None, epochs=1, steps_per_epoch=2, feature_config=str(config_path))
    model_dir = tmp_path / "m"
    training.train_and_evaluate(config_for(small_world, **options), str(model_dir))
    capsys.readouterr()
    training.train_and_evaluate(config_for(small_world, **dict(options, epochs=2)),
                                str(model_dir))
    assert "before a missing value read" not in capsys.readouterr().out
    (model_dir / "training_days.json").unlink()  # as a directory of 2026-12-05 has none
    training.train_and_evaluate(config_for(small_world, **dict(options, epochs=3)),
                                str(model_dir))
    out = capsys.readouterr().out
    assert (f"note: {model_dir} was trained before a missing value read as the feature "
            "config's default in training: its checkpoints read a missing item_length as 0 or "
            '"", this run and its evaluation read the default') in out
    # Without a default set, nothing to say.
    plain = tmp_path / "plain"
    plain_options = dict(options, feature_config=None)
    training.train_and_evaluate(config_for(small_world, **plain_options), str(plain))
    (plain / "training_days.json").unlink()
    capsys.readouterr()
    training.train_and_evaluate(config_for(small_world, **dict(plain_options, epochs=2)),
                                str(plain))
    assert "before a missing value read" not in capsys.readouterr().out


def test_a_resumed_run_whose_glob_matches_another_day_says_so(small_world, tmp_path, capsys):
    """The same --train glob matching one more day file on resume: the run says how many rows
    and which UTC day the remaining epochs read that the epochs done did not."""
    import datetime
    import shutil

    import pandas as pd

    files = sorted(glob.glob(small_world["train"]))
    logs = tmp_path / "logs"
    logs.mkdir()
    for path in files[:-1]:
        shutil.copy(path, logs)
    options = dict(train=str(logs / "*"), eval=None, epochs=1, steps_per_epoch=2)
    training.train_and_evaluate(config_for(small_world, **options), str(tmp_path / "m"))
    capsys.readouterr()
    shutil.copy(files[-1], logs)
    training.train_and_evaluate(config_for(small_world, **dict(options, epochs=2)),
                                str(tmp_path / "m"))
    added = pd.read_csv(files[-1])
    day = int(added["timestamp"].iloc[0]) // 86400
    assert (added["timestamp"] // 86400 == day).all()
    date = datetime.datetime.fromtimestamp(day * 86400, datetime.timezone.utc).date()
    assert (f"note: against the run being resumed, --train now holds +{len(added):,} rows on 1 "
            f"UTC day(s) ({date}): the epochs still to train read the logs as they are now, the "
            "epochs done read them as they were; train in an empty directory"
            ) in capsys.readouterr().out
    recorded = json.loads((tmp_path / "m" / "training_days.json").read_text())["train"]
    assert recorded[str(day)] == len(added)
    # Removed again: said once, then the record is the logs as they are; the day the epochs
    # done learned from stays among the days learned (the export's quality gate reads them).
    os.remove(logs / os.path.basename(files[-1]))
    for epochs in (3, 4):
        training.train_and_evaluate(config_for(small_world, **dict(options, epochs=epochs)),
                                    str(tmp_path / "m"))
        said = f"-{len(added):,} rows on 1 UTC day(s) ({date})" in capsys.readouterr().out
        assert said == (epochs == 3)
    from ranking import model_dir as model_dir_lib
    from ranking.input_notes import trained_day_rows

    record = model_dir_lib.read_training_days(str(tmp_path / "m"))
    assert str(day) not in record["train"] and trained_day_rows(record, False)[day] == len(added)
    # A day added to a finished run, which trains nothing more: not among the days learned.
    shutil.copy(files[-1], logs)
    training.train_and_evaluate(config_for(small_world, **dict(options, epochs=4)),
                                str(tmp_path / "m"))
    record = model_dir_lib.read_training_days(str(tmp_path / "m"))
    assert record["train"][str(day)] == len(added)
    fresh = tmp_path / "fresh"
    os.remove(logs / os.path.basename(files[-1]))
    training.train_and_evaluate(config_for(small_world, **options), str(fresh))
    shutil.copy(files[-1], logs)
    training.train_and_evaluate(config_for(small_world, **options), str(fresh))
    assert day not in trained_day_rows(model_dir_lib.read_training_days(str(fresh)), False)


def test_a_model_directory_of_another_format_version_says_what_to_do(tmp_path):
    from ranking import model_dir as model_dir_lib

    (tmp_path / "config.json").write_text('{"format_version": 1}')
    with pytest.raises(InputError) as refused:
        model_dir_lib.load_model_description(str(tmp_path))
    assert str(refused.value) == (
        f"{tmp_path / 'config.json'}: has format_version 1; this dwellrank reads version "
        f"{model_dir_lib.CONFIG_FORMAT_VERSION} (the model directory was made by another "
        "version: train it again in an empty directory, or use the version that made it; its "
        "exports still serve and score)")


def test_a_refused_model_directory_names_what_differs():
    from ranking.model_dir import differences

    before = {"stats": {"path": "/a", "x_l": 9.0}, "training": {"seed": 0},
              "features": [{"name": "item_length", "default": 0},
                           {"name": "source", "hash_buckets": 1024}]}
    after = {"stats": {"path": "/b", "x_l": 9.0}, "training": {"seed": 0, "new": 1},
             "features": [{"name": "item_length", "default": 500}]}
    assert differences(before, after) == [
        "features.item_length.default", "features.source", "stats.path", "training.new"]
    swapped = dict(before, features=before["features"][::-1])
    assert differences(before, swapped) == ["features (order)"]
    assert differences(before, before) == []


def test_bad_training_or_eval_input_leaves_no_model_directory(small_world, tmp_path, run):
    lines = gzip.open(sorted(glob.glob(small_world["train"]))[0], "rt").read().splitlines()
    lines[99] = lines[99].replace(",0,0.0,", ",3,0.0,", 1)
    assert ",3,0.0," in lines[99]
    dirty = tmp_path / "dirty.csv"
    dirty.write_text("\n".join(lines) + "\n")
    for train, evaluate in ((dirty, small_world["eval"]), (small_world["train"], dirty)):
        model_dir = tmp_path / "model"
        done = run("ranking.train", f"--train={train}", f"--eval={evaluate}",
                   f"--stats={small_world['stats']}", f"--model_dir={model_dir}")
        assert done.returncode == 1
        assert "dirty.csv, line 100, column 'click': expected 0 or 1, found 3" in done.stderr
        assert not model_dir.exists()
        # Refused before training: the evaluation logs' count, made beside the model's build,
        # is awaited before the model directory is made.
        assert "epoch 1/" not in done.stdout, done.stdout
    # A line TensorFlow's CSV parser rejects without naming it is found by reading the file
    # again: the evaluation logs' (counted in a thread while the main thread opens the training
    # input), not the training logs'.
    lines[99] = lines[99] + ",surplus"
    dirty.write_text("\n".join(lines) + "\n")
    model_dir = tmp_path / "model"
    done = run("ranking.train", f"--train={small_world['train']}", f"--eval={dirty}",
               f"--stats={small_world['stats']}", f"--model_dir={model_dir}")
    assert done.returncode == 1, done.stderr
    assert "dirty.csv, line 100: expected" in done.stderr and "Traceback" not in done.stderr, \
        done.stderr
    assert not model_dir.exists()


def position_x_on_line_1500(small_world, tmp_path):
    """The first training day's log with 'x' in the numeric `position` column on line 1,500
    (past the 1,000 rows that set the column types), as tmp_path/dirty.csv."""
    lines = gzip.open(sorted(glob.glob(small_world["train"]))[0], "rt").read().splitlines()
    header = lines[0].split(",")
    fields = lines[1499].split(",")
    fields[header.index("position")] = "x"
    lines[1499] = ",".join(fields)
    dirty = tmp_path / "dirty.csv"
    dirty.write_text("\n".join(lines) + "\n")
    return dirty


def test_a_bad_feature_value_past_the_type_sample_leaves_no_model_directory(small_world,
                                                                            tmp_path):
    """'x' in the numeric `position` column on line 1,500, past the 1,000 rows that set the
    column types: found while training, after the model directory was made; the run's files
    go (an earlier, resumable directory would keep its checkpoints)."""
    dirty = position_x_on_line_1500(small_world, tmp_path)
    for parent_exists in (False, True):
        model_dir = tmp_path / f"model-{parent_exists}"
        if parent_exists:
            model_dir.mkdir()  # an empty directory the user made stays, empty
        # With evaluation logs: they are counted in a thread while the training input is
        # opened, and the error is still explained against the training logs.
        config = config_for(small_world, "single_ctr", train=str(dirty),
                            eval=None if parent_exists else small_world["eval"], epochs=1,
                            batch_size=512)
        with pytest.raises(Exception) as caught:
            training.train_and_evaluate(config, str(model_dir))
        from core import log_diagnosis

        error = caught.value if isinstance(caught.value, InputError) else \
            log_diagnosis.translate_error(caught.value)
        assert "dirty.csv, line 1500, column 'position'" in str(error), str(caught.value)[:500]
        assert (os.listdir(model_dir) == []) if parent_exists else not model_dir.exists()


def test_a_bad_baseline_is_refused_before_training_and_checkpoints_outlive_bad_input(
        small_world, tmp_path, run):
    """A mistyped --baseline_metrics was read after training, whose bad-input clean-up then
    removed the new model directory, its checkpoints too; bad input met after a checkpoint was
    written (a bad row past the first steps) removed them as well."""
    args = [f"--train={small_world['train']}", f"--stats={small_world['stats']}",
            "--model=single_ctr", "--steps_per_epoch=2", "--batch_size=16", "--progress=epoch"]
    (tmp_path / "notes.json").write_text('{"auc_ctr": 0.6}')
    for given, says in ((tmp_path / "missing.json", "cannot read the baseline metrics"),
                        (tmp_path / "notes.json", "is not an eval_metrics.json of "
                                                  "ranking.train: it has no rows, clicks, "
                                                  "valid_reads, auc_valid_read")):
        done = run("ranking.train", *args, f"--eval={small_world['eval']}",
                   f"--model_dir={tmp_path / 'model'}", f"--baseline_metrics={given}")
        assert done.returncode == 1 and done.stderr.startswith(f"error: {given}: {says}"), \
            done.stderr
        assert "epoch 1/" not in done.stdout and not (tmp_path / "model").exists()
    # 'x' on line 1,500 in the numeric `position`: read in the third 512-row batch, after the
    # checkpoints of steps 1 and 2.
    dirty = position_x_on_line_1500(small_world, tmp_path)
    model_dir = tmp_path / "kept"
    done = run("ranking.train", f"--train={dirty}", f"--stats={small_world['stats']}",
               "--model=single_ctr", "--batch_size=512", "--shuffle_buffer=0",
               "--checkpoint_every=1", "--progress=none", f"--model_dir={model_dir}")
    assert done.returncode == 1 and "dirty.csv, line 1500, column 'position'" in done.stderr, \
        done.stderr
    import tensorflow as tf

    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("ckpt-2")


def test_unclicked_dwell_treated_as_zero_is_counted(small_world, tmp_path):
    import pandas as pd

    frame = pd.read_csv(sorted(glob.glob(small_world["train"]))[0], dtype=str,
                        keep_default_na=False)
    unclicked = frame.index[frame["click"] == "0"][:7]
    frame.loc[unclicked, "dwell_time"] = "12.5"
    dirty = tmp_path / "dirty.csv"
    frame.to_csv(dirty, index=False)
    config = config_for(small_world, "single_ctr", train=str(dirty), eval=str(dirty), epochs=1,
                        steps_per_epoch=2, allow_unclicked_dwell=True)
    metrics = training.train_and_evaluate(config, str(tmp_path / "model"))
    assert metrics["unclicked_dwell_treated_as_zero"] == {"train": 7, "eval": 7}


def test_a_training_file_large_against_the_shuffle_buffer_is_noted(small_world, tmp_path,
                                                                   capsys):
    import pandas as pd

    files = sorted(glob.glob(small_world["train"]))
    rows = [len(pd.read_csv(path)) for path in files]
    buffer = (min(rows) - 1) // 8  # every file holds more than 8 buffers
    # The note's threshold by hand: over 8 x the buffer, not at it.
    assert input_notes.input_order_note(["a", "b"], [8 * buffer, 8 * buffer], buffer) is None
    assert input_notes.input_order_note(["a"], [8 * buffer + 1], 0) is None  # no shuffle
    config = config_for(small_world, "single_ctr", epochs=1, steps_per_epoch=1,
                        shuffle_buffer=buffer, progress="epoch")
    training.train_and_evaluate(config, str(tmp_path / "model"))
    largest = max(range(len(files)), key=lambda k: rows[k])
    assert (f"note: {len(files)} training file(s) hold over 8 x --shuffle_buffer={buffer:,} rows "
            f"(the largest: {files[largest]}, {rows[largest]:,} rows)") in capsys.readouterr().out


def test_logs_without_a_feature_the_model_reads_are_refused_naming_it(tmp_path):
    from core.errors import InputError
    from ranking import data

    from model_fixtures import tiny_spec

    path = tmp_path / "eval.csv"  # position and category, but no item_length, publish_age_hours
    path.write_text("user_id,item_id,timestamp,click,dwell_time,position,category\n"
                    "u1,i1,1767571200,1,30.5,0,news\n")
    with pytest.raises(InputError) as refused:
        data.open_source(str(path), tiny_spec())
    assert str(refused.value) == (f"{path}: the logs lack the model's feature column(s) "
                                  "item_length, publish_age_hours (the training logs had them)")


def test_a_value_past_the_sampled_rows_of_the_training_logs_is_explained_as_inferred(
        small_world, tmp_path):
    # The spec's types come from the training logs' own first rows: a later value that does
    # not fit is explained so (not as the model's type, as for eval or scoring input).
    import pandas as pd

    from core import log_diagnosis
    from pipelines.stats import statistics

    frame = pd.read_csv(sorted(glob.glob(small_world["train"]))[0], dtype=str,
                        keep_default_na=False).iloc[:1500]
    frame.to_csv(tmp_path / "clean.csv", index=False)
    statistics.compute_stats(str(tmp_path / "clean.csv"), str(tmp_path / "stats"),
                             statistics.StatsConfig(), engine="local")
    frame.loc[1200, "item_length"] = "2.5"
    frame.to_csv(tmp_path / "dirty.csv", index=False)
    config = config_for(small_world, "single_ctr", train=str(tmp_path / "dirty.csv"), eval=None,
                        stats=str(tmp_path / "stats"), epochs=1)
    with pytest.raises(InputError, match=re.escape(
            "line 1202, column 'item_length': expected an integer (type inferred from the "
            "sampled first rows")):
        with log_diagnosis.input_errors_explained():  # as the command line explains it
            training.train_and_evaluate(config, str(tmp_path / "model"))


def test_a_value_that_does_not_fit_the_models_type_says_where_the_type_came_from(tmp_path):
    from core import log_diagnosis
    from core.errors import InputError
    from ranking import data

    from model_fixtures import tiny_spec

    path = tmp_path / "eval.csv"  # position is int64 in the model; this input has 2.5 on line 3
    path.write_text("user_id,item_id,timestamp,click,dwell_time,position,category,item_length,"
                    "publish_age_hours\nu1,i1,1767571200,1,30.5,0,news,500,3.5\n"
                    "u2,i2,1767571260,0,0,2.5,tech,800,1.0\n")
    source = data.open_source(str(path), tiny_spec())
    with pytest.raises(InputError, match=re.escape(
            "line 3, column 'position': expected an integer (the model reads this feature as "
            "int64, its type in the training logs")):
        with log_diagnosis.input_errors_explained():
            list(source.dataset(4).as_numpy_iterator())


def test_output_bias_prior_starts_the_click_tower_at_the_training_ctr(small_world, tmp_path):
    """--output_bias=prior: the click tower's output bias starts at the log-odds of the training
    CTR (clicks / rows, counted here with pandas), so with its hidden layers silenced the model
    predicts exactly that CTR; a model without a click tower is refused before its directory
    exists."""
    import dataclasses
    import math

    import numpy as np
    import pandas as pd
    import tensorflow as tf

    from ranking.tasks import TowerConfig

    frame = pd.concat([pd.read_csv(f) for f in sorted(glob.glob(small_world["train"]))])
    ctr = frame["click"].mean()
    prior = ModelConfig("mmoe", towers=TowerConfig(output_bias="prior"))
    config = training.TrainConfig(train=small_world["train"], stats=small_world["stats"],
                                  model=prior, epochs=1, steps_per_epoch=1, progress="none",
                                  optimizer=OptimizerConfig(learning_rate=1e-12))
    model_dir = str(tmp_path / "prior")
    training.train_and_evaluate(config, model_dir)
    from export import exporter

    model, _ = exporter.load_trained(model_dir)
    tower = model.network.get_layer("ctr_tower")
    assert float(tower.output_layer.bias[0]) == pytest.approx(math.log(ctr / (1 - ctr)),
                                                             abs=1e-6)
    for layer in tower.hidden:  # every hidden ReLU outputs 0: only the bias is left
        layer.kernel.assign(tf.zeros_like(layer.kernel))
        layer.bias.assign(tf.zeros_like(layer.bias))
    spec = model.feature_spec
    batch = {f.name: tf.zeros([3], f.dtype) for f in spec.features}
    np.testing.assert_allclose(model.network(batch)["ctr"].numpy(), [ctr] * 3, rtol=1e-5)

    no_click = dataclasses.replace(config, model=ModelConfig(
        "deepfm", towers=TowerConfig(output_bias="prior", single_task="dwell_bins")))
    with pytest.raises(InputError, match="has no click tower"):
        training.train_and_evaluate(no_click, str(tmp_path / "refused"))
    assert not (tmp_path / "refused").exists()


def test_read_ahead_fetches_the_first_element_at_once_and_then_iterates_as_given():
    import threading

    from ranking import data

    fetched = threading.Event()

    def elements():
        fetched.set()
        yield from (1, 2, 3)

    ahead = data.ReadAhead(elements())
    assert fetched.wait(timeout=10)  # before anybody asked for it
    assert list(ahead) == [1, 2, 3]
    assert list(data.ReadAhead(iter(()))) == []

    def failing():
        raise InputError("bad row", file="log.csv")
        yield

    ahead = data.ReadAhead(failing())
    with pytest.raises(InputError, match="log.csv: bad row"):
        next(ahead)


def test_read_ahead_batches_are_those_that_fit_the_bound_counted_by_hand():
    import tensorflow as tf

    from ranking import data

    spec = ({"user_id": tf.TensorSpec([None], tf.string),
             "position": tf.TensorSpec([None], tf.int64)},
            {"probs": tf.TensorSpec([None, 3], tf.float32)})
    row = data.STRING_ELEMENT_BYTES + 8 + 3 * 4  # 84 bytes
    assert data.read_ahead_batches(spec, 10, 10 * row * 10) == 10
    assert data.read_ahead_batches(spec, 10, 10 * row * 10 - 1) == 9
    assert data.read_ahead_batches(spec, 10, 100) == 1  # at least one batch


def test_read_ahead_reads_batches_before_they_are_asked_for_and_keeps_them_in_order():
    import threading
    import time

    import numpy as np
    import tensorflow as tf

    from core import threads
    from ranking import data

    made, lock = [0], threading.Lock()

    def count(x):
        with lock:
            made[0] += 1
        return x

    dataset = tf.data.Dataset.range(200).map(
        lambda x: tf.numpy_function(count, [x], tf.int64, stateful=True))
    assert data.read_ahead(dataset, 1, 0) is dataset  # 0: unchanged
    ahead = data.read_ahead(dataset, 1, 100 * 8)  # 100 batches of one int64
    assert ahead.options().threading.private_threadpool_size == max(
        1, threads.available_cpus() - 1)
    iterator = iter(ahead)
    assert int(next(iterator)) == 0
    deadline = time.monotonic() + 20
    while made[0] < 60 and time.monotonic() < deadline:  # filled while nobody asks
        time.sleep(0.05)
    assert made[0] >= 60
    assert [int(x) for x in iterator] == list(range(1, 200))
    np.testing.assert_array_equal(list(ahead.as_numpy_iterator()), np.arange(200))


def test_reading_the_first_batch_ahead_leaves_training_as_it_was(small_world, tmp_path,
                                                                 monkeypatch):
    """The first epoch read ahead (while the model is built) and read in the loop, with the
    deep read-ahead buffer and without, give the same batches: the same weights to the last
    bit."""
    import dataclasses

    import numpy as np
    import tensorflow as tf

    from ranking import data

    real = data.ReadAhead
    taken = []  # per read-ahead made (the first epoch's first, the evaluation's last): batches

    class Counted(real):
        def __init__(self, iterator):
            super().__init__(iterator)
            self.taken = []
            taken.append(self.taken)

        def __next__(self):
            batch = super().__next__()
            self.taken.append(batch)
            return batch

    def evaluation_only(iterator):  # the training's read-ahead (the first one made) is off
        taken.append(None)
        return None if len(taken) == 1 else real(iterator)

    def weights(model_dir):
        reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints"))
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
                if name.startswith("model/")}

    # With evaluation logs, counted in a thread beside the build and the read-ahead.
    config = config_for(small_world, "single_ctr", epochs=1, steps_per_epoch=30,
                        train_cache_mb=0)
    monkeypatch.setattr(data, "ReadAhead", Counted)
    traced = []  # the evaluation's forward pass, traced for its dataset's element spec
    real_trace = evaluation.Predictor.trace
    monkeypatch.setattr(evaluation.Predictor, "trace",
                        lambda self, spec: traced.append(self) or real_trace(self, spec))
    ahead_metrics = training.train_and_evaluate(config, str(tmp_path / "ahead"))
    assert len(taken) == 2 and len(taken[0]) == 30  # the loop trained on the batches read ahead
    # The evaluation predicted every batch it read ahead, with its one trace.
    eval_rows = sum(int(tf.size(labels["click"])) for _, labels in taken[1])
    assert eval_rows == ahead_metrics["rows"] > 0
    assert len(traced) == 1 and traced[0]._step.experimental_get_tracing_count() == 1  # noqa: SLF001
    # None: the loop makes the epoch's input itself, after the model's build.
    taken.clear()
    monkeypatch.setattr(data, "ReadAhead", evaluation_only)
    in_loop_metrics = training.train_and_evaluate(config, str(tmp_path / "in_loop"))
    assert len(taken) == 2 and taken[0] is None
    assert ahead_metrics["auc_ctr"] == in_loop_metrics["auc_ctr"]
    ahead, in_loop = weights(str(tmp_path / "ahead")), weights(str(tmp_path / "in_loop"))
    assert ahead.keys() == in_loop.keys() and len(ahead) > 4
    for name in ahead:
        np.testing.assert_array_equal(ahead[name], in_loop[name], err_msg=name)
    # Without the deep read-ahead buffer (--read_ahead_mb=0: tf.data's own prefetch) as well.
    monkeypatch.setattr(data, "ReadAhead", real)
    shallow = dataclasses.replace(config, read_ahead_mb=0)
    assert training.train_and_evaluate(shallow, str(tmp_path / "shallow"))["auc_ctr"] == (
        ahead_metrics["auc_ctr"])
    for name, value in weights(str(tmp_path / "shallow")).items():
        np.testing.assert_array_equal(value, ahead[name], err_msg=name)


def test_a_directory_left_by_a_run_killed_before_its_first_config_is_new(tmp_path):
    """Killed while writing its first config.json, a run leaves only that write's temporary
    file: a re-run (an auto-resume loop's) starts there, not refused; other contents are."""
    from ranking import model_dir as model_dir_lib

    directory = tmp_path / "m"
    directory.mkdir()
    (directory / ".config.json.tmp-k1ll3d").write_text('{"half": ')
    try:
        assert model_dir_lib.prepare(str(directory), {"model": "vr_ndt"}) is False
        assert model_dir_lib.taken_as_new(str(directory)) is False  # it existed, empty
        assert sorted(os.listdir(directory)) == ["config.json"]
    finally:
        model_dir_lib.unlock(str(directory))
    os.remove(directory / "config.json")
    (directory / "notes.txt").write_text("mine")
    (directory / ".config.json.tmp-k1ll3d").write_text('{"half": ')
    try:
        with pytest.raises(InputError, match="is not empty and holds no config.json"):
            model_dir_lib.prepare(str(directory), {"model": "vr_ndt"})
    finally:
        model_dir_lib.unlock(str(directory))
    assert sorted(os.listdir(directory)) == [".config.json.tmp-k1ll3d", "notes.txt"]


def test_a_model_directory_trained_by_another_process_is_refused_and_leftovers_go(
        small_world, tmp_path):
    """Two runs in one directory would rotate each other's checkpoints away: while another
    process holds it, training is refused and leaves its files alone. Once free, a resumed
    run removes what killed runs left (temporaries of best/ and final/, a broken-off
    checkpoint write), which nothing reads."""
    import subprocess
    import sys

    from ranking import model_dir as model_dir_lib

    model_dir = str(tmp_path / "m")
    run = config_for(small_world, eval=None, epochs=1, steps_per_epoch=3)
    training.train_and_evaluate(run, model_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "d = os.open(sys.argv[1], os.O_RDONLY)\n"
         "fcntl.flock(d, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(120)\n",
         model_dir], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        before = sorted(os.listdir(model_dir))
        with pytest.raises(InputError, match=f"--model_dir {model_dir} is being trained by "
                                             "another process now"):
            training.train_and_evaluate(run, model_dir)
        assert sorted(os.listdir(model_dir)) == before
    finally:
        holder.kill()
        holder.wait()
    (tmp_path / "m" / ".config.json.tmp-a1b2").mkdir()
    (tmp_path / "m" / ".training_days.json.old-c3d4").write_text("{")
    (tmp_path / "m" / ".best.tmp-e5f6").mkdir()  # best/ absent: maybe the only copy, kept
    (tmp_path / "m" / "checkpoints" / "ckpt-99_temp").mkdir()
    training.train_and_evaluate(run, model_dir)  # a finished run started again
    assert sorted(os.listdir(model_dir)) == sorted(before + [".best.tmp-e5f6"])
    assert not (tmp_path / "m" / "checkpoints" / "ckpt-99_temp").exists()
    assert not model_dir_lib.is_locked_here(model_dir)


def test_without_flock_a_directory_is_held_but_nothing_is_removed(tmp_path, monkeypatch):
    """A file system without flock (some network mounts): the directory is still this run's
    (a new one is emptied after bad input), but leftovers are not removed, since another
    process may be writing them."""
    import errno
    import fcntl

    from ranking import model_dir as model_dir_lib

    def no_flock(*_):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    directory = tmp_path / "m"
    description = {"format_version": model_dir_lib.CONFIG_FORMAT_VERSION, "model": "vr_ndt",
                   "targets": {}, "features": [], "stats": {}, "training": {}}
    try:
        assert model_dir_lib.prepare(str(directory), description) is False
        assert model_dir_lib.is_locked_here(str(directory))
        assert model_dir_lib.taken_as_new(str(directory)) is True  # made by this run
    finally:
        model_dir_lib.unlock(str(directory))
    (directory / "best").mkdir()
    (directory / ".best.tmp-x1").mkdir()
    try:
        assert model_dir_lib.prepare(str(directory), description) is True
        assert model_dir_lib.taken_as_new(str(directory)) is None
    finally:
        model_dir_lib.unlock(str(directory))
    assert (directory / ".best.tmp-x1").exists()
