"""core.atomic: outputs appear whole or not at all, and a failed job leaves no directory it
made."""

import pytest

from core.atomic import atomic_directory, atomic_file


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
    for device in ("/dev/null", "/dev/full"):
        if os.path.exists(device):
            with pytest.raises(InputError, match="is not a regular file"):
                with atomic_file(device) as handle:
                    handle.write("x")
            assert not os.path.isfile(device)  # still a device
