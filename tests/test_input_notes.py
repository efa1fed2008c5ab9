"""ranking.input_notes: what training says about its input (the held-out window, ids against
their hash buckets, files shared between --train and --eval), against hand values."""

import glob

from ranking import input_notes, training
from ranking.models import ModelConfig

DAY = 20_000  # a UTC day number (2024-10-04)


def config_for(world, **overrides):
    options = dict(train=world["train"], eval=world["eval"], stats=world["stats"],
                   model=ModelConfig("single_ctr"), progress="none")
    return training.TrainConfig(**{**options, **overrides})


def test_the_validation_window_is_described_and_a_sliver_noted():
    # Training days 20000-20002 with 1,000 rows each (two files), a held-out day of 100 or 99.
    rows = {(0, DAY): 600, (1, DAY): 400, (0, DAY + 1): 1000, (1, DAY + 2): 1000}
    full = input_notes.validation_window_line({**rows, (1, DAY + 3): 100}, 1)
    assert full == ("validation window (--validation_days=1): 2024-10-07 to 2024-10-07 UTC, "
                    "100 rows; training 2024-10-04 to 2024-10-06, 3,000 rows")
    sliver = input_notes.validation_window_line({**rows, (1, DAY + 3): 99}, 1)
    assert sliver.endswith("; note: 99 rows a held-out day against 1,000 a training day (logs "
                           "cut at a local midnight end with a sliver of a UTC day): hold out "
                           "one more day")
    # Two held-out days of 250 rows each: 250 a day, not a sliver.
    two = input_notes.validation_window_line({(0, DAY): 1000, (0, DAY + 1): 250,
                                              (0, DAY + 2): 250}, 2)
    assert two == ("validation window (--validation_days=2): 2024-10-05 to 2024-10-06 UTC, "
                   "500 rows; training 2024-10-04 to 2024-10-04, 1,000 rows")


def test_evaluation_files_that_are_training_files_are_noted(small_world):
    import dataclasses

    train = sorted(glob.glob(small_world["train"]))
    assert input_notes.input_overlap_notes(config_for(small_world)) == []
    overlapping = config_for(small_world, eval=f"{small_world['eval']},{train[3]}")
    assert input_notes.input_overlap_notes(overlapping) == [
        f"note: 1 --eval file(s) are --train files too ({train[3]}): their metrics measure rows "
        "the model trained on"]
    validation = dataclasses.replace(overlapping.selection, validation=small_world["train"])
    notes = input_notes.input_overlap_notes(dataclasses.replace(overlapping, selection=validation))
    assert notes[1] == (f"note: 4 --validation file(s) are --train files too ({train[0]}, ...): "
                        "their metrics measure rows the model trained on")


def test_ids_beyond_their_hash_buckets_are_noted():
    import math

    from model_fixtures import tiny_spec

    spec = tiny_spec({"features": {"item_id": {"hash_buckets": 1000, "embedding_dim": 8}}})
    users = spec["user_id"].hash_buckets
    assert input_notes.id_bucket_notes(spec, {"clicked_users": users, "clicked_items": 1000}) == []
    assert input_notes.id_bucket_notes(spec, {}) == []  # an artifact from before the counts
    [user, item] = input_notes.id_bucket_notes(spec, {"clicked_users": users + 1,
                                                   "clicked_items": 1500})
    assert user.startswith(f"note: the stats window has {users + 1:,} users with a click for "
                           f"{users:,} hash buckets of user_id: 63% of them share")
    # 1 - exp(-1.5) = 78 %; 2 x 1500 = 3000 -> 4096 buckets of 8 floats: 0.125 MB.
    assert f"{1 - math.exp(-1.5):.0%}" == "78%"
    assert item == ("note: the stats window has 1,500 items with a clicked dwell for 1,000 hash "
                    "buckets of item_id: 78% of them share an embedding row; raise them in the "
                    'feature config ({"features": {"item_id": {"hash_buckets": 4096}}}, 0.1 MB of '
                    "table)")
