"""The stats job's doubts about logs (core.data_doubts): each starts at its stated threshold
and names its remedy; the values at the thresholds are computed by hand."""

import numpy as np

from core import data_doubts


def test_a_dwell_unit_doubt_starts_past_an_hour_of_typical_dwell():
    # exp(mu) = 3600 s is none, 3601 s is one.
    assert data_doubts.dwell_unit_doubt(np.log(3600.0)) is None
    assert "exp(mu) = 3,601 s (1.0 h)" in data_doubts.dwell_unit_doubt(np.log(3601.0))
    assert data_doubts.dwell_unit_doubt(float("nan")) is None


def test_the_stats_jobs_doubts_about_real_logs_start_at_their_stated_thresholds():
    def doubts(mu=np.log(60.0), rows=1000, clicks=100, clicks_with_dwell=100, min_dwell=5.0,
               sigma=None, t1_threshold=None):
        stats = {"mu": mu, "rows": rows, "clicks": clicks, "clicks_with_dwell": clicks_with_dwell,
                 "rules": {"min_dwell": min_dwell, "t1_threshold": t1_threshold}}
        return data_doubts.data_doubts(stats if sigma is None else dict(stats, sigma=sigma))

    assert doubts() == []
    # Minutes: exp(mu) below the floor (5.001 s: none; 4.99 s: one).
    assert doubts(mu=np.log(5.001)) == []
    [minutes] = doubts(mu=np.log(4.99))
    assert "exp(mu) = 4.99 s, below the valid-read floor --min_dwell=5 s" in minutes
    assert "if it is in minutes, multiply it by 60" in minutes
    assert doubts(mu=np.log(2.0), min_dwell=1.0) == []
    # Rule T1's threshold below the floor (short videos): x_l = exp(ln 8 - ln 1.59) = 5.03 s is
    # none, exp(ln 8 - ln 1.61) = 4.97 s one; a given --t1_threshold is the one compared.
    assert doubts(mu=np.log(8.0), sigma=np.log(1.59)) == []
    [short] = doubts(mu=np.log(8.0), sigma=np.log(1.61))
    assert short.startswith("rule T1's threshold, x_l = exp(mu - sigma) = 4.97 s, is below the "
                            "valid-read floor --min_dwell=5 s: every click of 5 s or more passes "
                            "T1, so rules T2 and T3 never decide")
    assert doubts(mu=np.log(8.0), sigma=np.log(1.61), t1_threshold=6.0) == []
    [given] = doubts(sigma=0.1, t1_threshold=4.0)
    assert given.startswith("rule T1's threshold, --t1_threshold=4 s, is below")
    # Dwell 0 on clicks: 5 of 100 (5 %) is none, 6 of 100 one.
    assert doubts(clicks_with_dwell=95) == []
    [zero] = doubts(clicks_with_dwell=94)
    assert zero.startswith("6 of 100 clicks (6%) have dwell 0")
    # Milliseconds with dwell 0 on half the clicks: both named, each once.
    assert len(doubts(mu=np.log(4000.0), clicks_with_dwell=50)) == 2

    def outcome(on_clicks, off_clicks, rows=1000, clicks=100):
        stats = {"mu": np.log(60.0), "rows": rows, "clicks": clicks, "clicks_with_dwell": clicks,
                 "rules": {"min_dwell": 5.0},
                 "numeric_features": {"is_like": {"mean": 0.1, "std": 0.3,
                                                  "nonzero_clicked": on_clicks,
                                                  "nonzero_unclicked": off_clicks}}}
        return data_doubts.data_doubts(stats)

    # 900 unclicked rows; a feature on 3 of 100 clicks would be on 27 of them if independent
    # (>= 20: named), on 2 of 100 on 18 (not named); one unclicked row with it clears it.
    [like] = outcome(3, 0)
    assert like.startswith("feature column 'is_like' is 0 on all 900 unclicked rows but not on "
                           "3 of the 100 clicked ones")
    assert '{"features": {"is_like": {"exclude": true}}}' in like
    assert outcome(2, 0) == [] and outcome(3, 1) == []

    def negative(rows_below_zero):
        stats = {"mu": np.log(60.0), "rows": 1000, "clicks": 100, "clicks_with_dwell": 100,
                 "rules": {"min_dwell": 5.0},
                 "numeric_features": {"delta": {"mean": 0.1, "std": 0.3, "negative":
                                                rows_below_zero}}}
        return data_doubts.data_doubts(stats)

    # Negative on 50 of 1,000 rows (5 %): none; on 51, one.
    assert negative(50) == []
    [delta] = negative(51)
    assert delta.startswith("feature column 'delta' is negative on 51 of 1,000 rows (5.1%): ")
    assert '{"features": {"delta": {"transform": "standardize"}}}' in delta
    assert '({"type": "categorical"})' in delta

    def large(values):
        values = np.asarray(values, float)
        log = np.log1p(values)
        stats = {"mu": np.log(60.0), "rows": 1000, "clicks": 100, "clicks_with_dwell": 100,
                 "rules": {"min_dwell": 5.0},
                 "numeric_features": {"date": {
                     "mean": float(log.mean()), "std": float(log.std()),
                     "raw_mean": float(values.mean()), "raw_std": float(values.std())}}}
        return data_doubts.data_doubts(stats)

    # A date written 20220408: its log1p deviates by 5.5e-8 around 16.82, below float32's
    # resolution there (16.82 x 1.19e-7 = 2.0e-6): read as a constant.
    [date] = large([20220408, 20220409, 20220410, 20220411])
    assert date.startswith("feature column 'date' varies by 1.118 around 20220409.5 but its "
                           "log1p only by 5.5e-08 around 16.82: the default transform (log1p, "
                           "standardized) reads it as a constant, and a missing value (0) as "
                           "3e+08 deviations away")
    assert '{"features": {"date": {"transform": "standardize"}}}' in date
    # A year: 1.4e-3 / 7.61 = 1.9e-4 of its mean, above float32's resolution: coarse steps.
    [year] = large([2019, 2020, 2021, 2022, 2023])
    assert "reads it as a few float32 steps" in year
    # A play time in ms, a constant column, a rare flag (1 on one row in 2 million: its log1p
    # barely varies too, but around 0) and an almost-always-1 flag: none.
    assert large([1200, 35000, 8000, 260000]) == [] and large([5, 5, 5]) == []
    assert large([0] * 1_999_999 + [1]) == [] and large([1] * 1_999_999 + [0]) == []
    # Unix seconds over ten days (spread 2.5e5 around 1.77e9: 1.4e-4 of it): coarse steps.
    [seconds] = large(np.linspace(1767571200, 1767571200 + 864_000, 1001))
    assert "reads it as a few float32 steps" in seconds


def test_ids_written_as_decimals_are_named_from_nine_in_ten_of_twenty_distinct_ids():
    def doubt(decimal, whole=0, column="user_id"):
        ids = [f"{100 + k}.0" for k in range(decimal)] + [str(500 + k) for k in range(whole)]
        return data_doubts.decimal_id_doubt(column, ids)

    # Twenty distinct ids at least: 19 decimals are none, 20 one.
    assert doubt(19) is None
    text = doubt(20)
    assert text.startswith("column 'user_id' holds integers written as decimals (20 of the 20 "
                           "distinct ids read, such as '100.0'): ids are text, read as written, "
                           "so logs or requests that write them as integers ('100') name other "
                           "users")
    assert "dtype=str or 'Int64'" in text
    # Nine in ten: 18 of 20 (0.9) is one, 17 of 20 none.
    assert doubt(18, 2) is not None and doubt(17, 3) is None
    assert "name other items" in doubt(20, column="item_id")
    # Each id once, empty ids left out: 20 rows of one id, or 20 empty ones, are not 20 ids.
    assert data_doubts.decimal_id_doubt("user_id", ["7.0"] * 20 + [""] * 20) is None
    # What a decimal integer is: signs and trailing zeros yes; a fraction, text or an integer no.
    ids = ["-3.00", "+4.0"] + [f"{k}.0" for k in range(18)] + ["art-1.0", "1.5"]
    assert data_doubts.decimal_id_doubt("item_id", ids) == doubt(20, 0, "item_id").replace(
        "20 of the 20", "20 of the 22").replace("'100.0'", "'-3.00'").replace("('100')", "('-3')")
    assert data_doubts.decimal_id_doubt("item_id", [str(100196 + k) for k in range(30)]) is None
    # Only the first ID_SAMPLE ids are read: 1,000 decimals then 200 integers are all decimals
    # read (all 1,200 would be 1,000 of 1,200, below nine in ten).
    early = [f"{k}.0" for k in range(data_doubts.ID_SAMPLE)] + [str(k) for k in range(200)]
    assert "(1,000 of the 1,000 distinct ids read" in data_doubts.decimal_id_doubt("user_id",
                                                                                   early)


def test_ids_with_white_space_at_an_end_are_named():
    assert data_doubts.spaced_id_doubt("item_id", ["art-1", "art-2", "", "art 3"]) is None
    ids = ["art-1", " art-2", "art-3 ", " art-2", "art-4\t"]
    assert data_doubts.spaced_id_doubt("item_id", ids) == (
        "column 'item_id' holds ids with white space at an end (3 of the 4 distinct ids read, "
        "such as ' art-2'): ids are text, read as written, so ' art-2' and 'art-2' are two items; "
        "write the ids without the spaces in every log and compute the statistics again")
    # Only the first ID_SAMPLE ids are read; both doubts at once.
    late = [str(k) for k in range(data_doubts.ID_SAMPLE)] + [" 7"]
    assert data_doubts.spaced_id_doubt("user_id", late) is None
    both = data_doubts.id_doubts("user_id", [f" {k}.0" for k in range(30)])
    assert len(both) == 1 and "white space" in both[0]  # ' 3.0' is no decimal integer
    both = data_doubts.id_doubts("user_id", [f"{k}.0" for k in range(30)] + [" 7.0"])
    assert [d.split(" (")[0] for d in both] == [
        "column 'user_id' holds integers written as decimals",
        "column 'user_id' holds ids with white space at an end"]
