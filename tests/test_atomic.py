"""core.atomic: outputs appear whole or not at all, and a failed job leaves no directory it
made."""

import json
import os

import pytest

from core.atomic import atomic_directory, atomic_file
from core.errors import InputError


def test_a_failed_output_leaves_nothing_not_even_the_parents_it_made(tmp_path):
    (tmp_path / "kept").mkdir()
    for target in (tmp_path / "new" / "deeper" / "out", tmp_path / "kept" / "out"):
        with pytest.raises(RuntimeError):
            with atomic_directory(str(target)) as tmp:
                (tmp_path / "probe").write_text(tmp)
                raise RuntimeError("the job failed")
        with pytest.raises(RuntimeError):
            with atomic_file(str(target) + ".md") as handle:
                handle.write("half")
                raise RuntimeError("the job failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "probe"]
    assert list((tmp_path / "kept").iterdir()) == []


def test_a_finished_output_appears_whole_and_replaces_what_may_be_replaced(tmp_path):
    target = tmp_path / "a" / "b" / "out"
    with atomic_directory(str(target)) as tmp:
        (tmp_path / "seen").write_text(str(target.exists()))
        with open(f"{tmp}/x.txt", "w") as handle:
            handle.write("one")
    assert (tmp_path / "seen").read_text() == "False"
    assert (target / "x.txt").read_text() == "one"
    with atomic_directory(str(target), may_replace=lambda p: True) as tmp:
        with open(f"{tmp}/y.txt", "w") as handle:
            handle.write("two")
    assert sorted(p.name for p in target.iterdir()) == ["y.txt"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["out"]  # no temporary left
    from core.errors import InputError

    with pytest.raises(InputError, match="holds something else"):
        with atomic_directory(str(target)):
            pass


def test_a_file_output_follows_links_and_never_replaces_a_device(tmp_path):
    import os

    from core.errors import InputError

    target = tmp_path / "real.md"
    target.write_text("old")
    (tmp_path / "link.md").symlink_to(target)
    with atomic_file(str(tmp_path / "link.md")) as handle:
        handle.write("new")
    assert (tmp_path / "link.md").is_symlink() and target.read_text() == "new"
    # Devices and streams are refused by name, never written (a regression would not replace
    # /dev/null as root: the paths are links in tmp_path to them).
    for stream in ("/dev/null", "/dev/stdout"):
        link = tmp_path / f"to-{os.path.basename(stream)}"
        link.symlink_to(stream)
        with pytest.raises(InputError, match="is a device or a process's stream"):
            with atomic_file(str(link)) as handle:
                handle.write("x")
        assert link.is_symlink()
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(InputError, match="is not a regular file"):
        with atomic_file(str(pipe)) as handle:
            handle.write("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "x.md")
    with pytest.raises(InputError, match="a symbolic link to nothing"):
        with atomic_file(str(tmp_path / "dangling")) as handle:
            handle.write("x")
    assert not (tmp_path / "nowhere").exists()


def test_an_output_at_a_url_is_refused_not_made_a_local_folder(tmp_path, monkeypatch):
    """os.path.abspath('gs://b/out') is a local path ending in 'gs:/b/out': refused instead."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="output directory gs://b/out is a URL"):
        with atomic_directory("gs://b/out"):
            pass
    with pytest.raises(InputError, match="output file gs://b/out.json is a URL"):
        with atomic_file("gs://b/out.json"):
            pass
    assert os.listdir(tmp_path) == []


def test_an_output_directory_holding_an_input_is_refused_before_anything_moves(tmp_path):
    # The label job's output named like its shards (`00000-raw.csv`) was taken for an earlier
    # output and replaced, deleting the raw log it was reading.
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "00000-raw.csv").write_text("raw\n")
    os.symlink(logs, tmp_path / "link")
    for target in (logs, tmp_path / "link", tmp_path):
        with pytest.raises(InputError, match=r"holds the input .*00000-raw.csv: writing the "
                                             "output there would replace the input being read"):
            with atomic_directory(str(target), may_replace=lambda _: True,
                                  inputs=[str(logs / "00000-raw.csv"), "gs://b/day.csv"]):
                raise AssertionError("no work starts")
    assert (logs / "00000-raw.csv").read_text() == "raw\n"
    # Beside the inputs, or named like them, is fine.
    with atomic_directory(str(tmp_path / "logs-labelled"),
                          inputs=[str(logs / "00000-raw.csv")]) as tmp:
        open(os.path.join(tmp, "out"), "w").close()
    assert os.listdir(tmp_path / "logs-labelled") == ["out"]


def test_names_up_to_the_file_systems_limit_are_written_and_longer_ones_refused_first(tmp_path):
    """A name of 242 to 255 characters is legal, but its temporary sibling (`.NAME.tmp-` and
    8 characters) was not: ENAMETOOLONG as a traceback. A name past 255 failed at the final
    rename, after the whole job: now refused before it starts."""
    longest = "d" * 255
    # 250 bytes in 125 two-byte characters: the temporary name is cut by bytes, whole
    # characters kept.
    accented = "é" * 125
    with atomic_file(str(tmp_path / accented)) as handle:
        handle.write("é")
    assert (tmp_path / accented).read_text() == "é"
    with atomic_directory(str(tmp_path / longest)) as tmp:
        (tmp_path / "probe").write_text(tmp)
    assert (tmp_path / longest).is_dir()
    with atomic_file(str(tmp_path / ("f" * 255))) as handle:
        handle.write("whole")
    assert (tmp_path / ("f" * 255)).read_text() == "whole"
    # Again over the earlier one: its old copy's temporary name is cut the same way.
    with atomic_directory(str(tmp_path / longest), may_replace=lambda _: True):
        pass
    started = []
    for make in (lambda path: atomic_directory(path), lambda path: atomic_file(path)):
        with pytest.raises(InputError, match="has 256 bytes, more than the file system's 255"):
            with make(str(tmp_path / ("x" * 256) / "out")):
                started.append(1)
    assert started == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([longest, "f" * 255, "probe",
                                                                 accented])


def test_a_job_replaces_its_own_earlier_output_alone(tmp_path):
    """Each job's `may_replace`: an earlier output of the job (its files alone, its records as
    it writes them) is replaced; the output with a file added beside it or inside one of its
    folders is not, nor a person's own file of the output's name (a stats.json, a report.md):
    a marker's name alone used to suffice, and the whole directory was replaced."""
    from online import simulation
    from pipelines.label import labelling
    from pipelines.score import scoring
    from pipelines.simulate import writing
    from pipelines.stats import statistics
    from pipelines.validate import validation
    from report import directory

    simulated = json.dumps({"generator": writing.GENERATOR})
    # {job: (may_replace, {its files: content; a name ending in / a folder}, a file of its
    # marker's name as a person might keep one, a folder of its to add a file into)}
    jobs = {
        "stats": (statistics.is_artifact,
                  {"stats.json": '{"format_version": 3}', "items/part-00000-of-00032.csv": "",
                   "user_days/part-00000-of-00032.csv": ""}, ("stats.json", "{}"), "items"),
        "simulate": (writing._is_previous_output,
                     {"summary.json": simulated, "logs/day-00.csv.gz": "",
                      "ground_truth/users.csv.gz": "", "ln_dwell_hist.png": ""},
                     ("summary.json", '{"generator": "mine"}'), "logs"),
        "label": (labelling._is_label_output,
                  {"00000-day-1.tfrecord.gz": "", "labels.png": "",
                   "summary.json": '{"rule_shares_of_valid_reads": {}}'},
                  ("summary.json", '{"mine": 1}'), None),
        "score": (scoring._is_score_output,
                  {"summary.json": '{"saved_model": "m/1"}', scoring.DEAD_LETTER:
                   "file,row,reason,raw\n", "00000-day-1.csv.gz": ""},
                  ("summary.json", "{}"), None),
        "ab_test": (simulation.is_ab_test_output,
                    {"online.json": '{"policies": []}', "online.md": "",
                     "migration-vr_ndt.png": ""}, ("online.json", "{}"), None),
        "tune_fusion": (simulation.is_tuning_output,
                        {"frontier.json": '{"saved_model": "m/1"}', "frontier.md": "",
                         "frontier.png": ""}, ("frontier.json", "[]"), None),
        "validate": (validation.is_validation_output,
                     {"report.md": "# Validation of `x`\n", "stats.pb": "",
                      "schema.pbtxt": ""}, ("report.md", "# my notes\n"), None),
        "report": (directory.is_report_directory,
                   {"report.md": "# dwellrank report\n", "curves-vr_ndt.png": ""},
                   ("report.md", "# my notes\n"), None),
    }
    for job, (may_replace, files, (marker, theirs), folder) in jobs.items():
        output = tmp_path / job
        output.mkdir()
        assert may_replace(str(output)), job  # empty
        for name, text in files.items():
            (output / name).parent.mkdir(parents=True, exist_ok=True)
            (output / name).write_text(text)
        assert may_replace(str(output)), job
        if folder:  # a file of someone's inside one of the output's folders
            (output / folder / "notes.txt").write_text("mine")
            assert not may_replace(str(output)), job
            (output / folder / "notes.txt").unlink()
        picture = "holiday.png" if job == "report" else "thesis.tex"
        (output / picture).write_text("months of work")
        assert not may_replace(str(output)), job
        mine = tmp_path / f"mine-{job}"  # a file of the marker's name, of one's own
        mine.mkdir()
        (mine / marker).write_text(theirs)
        assert not may_replace(str(mine)), job
