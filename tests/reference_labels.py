"""An independent NumPy/pandas implementation of SPEC §3, written from the spec's text.

It shares no code with `pipelines.labels` / `pipelines.stats.statistics`: tests compare the two, and
the labelling benchmark uses it as the pandas baseline.
"""

import numpy as np
import pandas as pd

DAY = 86_400


def reference_stats(frame: pd.DataFrame, min_item_records: int = 5, num_bins: int = 8) -> dict:
    """mu, sigma, x_l, x_h, item P10 table, user-day clicks and the log-dwell bin range."""
    clicks = frame[frame["click"] == 1]
    positive = clicks[clicks["dwell_time"] > 0]
    ln = np.log(positive["dwell_time"].to_numpy(float))
    mu, sigma = ln.mean(), ln.std(ddof=0)
    grouped = positive.groupby("item_id")["dwell_time"]
    counts = grouped.size()
    p10 = grouped.agg(lambda s: np.percentile(s.to_numpy(float), 10))
    p10 = p10[counts >= min_item_records]
    user_days = clicks.groupby([clicks["user_id"], clicks["timestamp"] // DAY]).size()
    lo, hi = np.percentile(positive["dwell_time"].to_numpy(float), [0.5, 99.5])
    return {"mu": mu, "sigma": sigma, "x_l": np.exp(mu - sigma), "x_h": np.exp(mu + sigma),
            "item_p10": p10.to_dict(), "user_days": user_days.to_dict(),
            "log_lo": np.log(lo), "log_hi": np.log(hi), "num_bins": num_bins}


def reference_ndt(dwell, offset, tau, A, B):
    return np.maximum(A / (1 + np.exp(-(np.asarray(dwell, float) - offset) / tau)) - B, 0)


def reference_labels(frame: pd.DataFrame, *, x_l: float, item_p10: dict, history: dict,
                     ndt: dict, log_lo: float, log_hi: float, num_bins: int,
                     min_dwell: float = 5, window_days: int = 7, light_clicks: int = 7,
                     stats_day_rows: dict | None = None) -> pd.DataFrame:
    """The five label columns for `frame`. `history`: (user, day) -> clicks from the stats
    window, used for days of the T2 window without rows in `frame`; on days with fewer rows in
    `frame` than the stats window had (`stats_day_rows`, day -> rows), a user's count is the
    larger of the two."""
    dwell = frame["dwell_time"].to_numpy(float)
    clicked = frame["click"].to_numpy() == 1
    day = frame["timestamp"].to_numpy() // DAY
    users = frame["user_id"].astype(str).to_numpy()
    rows_per_day = pd.Series(day).value_counts().to_dict()
    covered = {d for d, n in rows_per_day.items() if n >= (stats_day_rows or {}).get(d, 0)}
    own = frame[clicked].groupby([users[clicked], day[clicked]]).size().to_dict()
    window = np.empty(len(frame), np.int64)
    for i, (u, d) in enumerate(zip(users, day)):
        total = 0
        for k in range(window_days):
            dd = d - k
            if dd in covered:
                total += own.get((u, dd), 0)
            elif dd in rows_per_day:
                total += max(own.get((u, dd), 0), history.get((u, dd), 0))
            else:
                total += history.get((u, dd), 0)
        window[i] = total
    p10 = frame["item_id"].astype(str).map(item_p10).to_numpy(float)
    t1 = dwell > x_l
    t2 = window < light_clicks
    t3 = ~np.isnan(p10) & (dwell > np.nan_to_num(p10, nan=np.inf))
    valid = clicked & (dwell >= min_dwell) & (t1 | t2 | t3)
    rule = np.where(~valid, 0, np.where(t1, 1, np.where(t2, 2, 3)))
    with np.errstate(divide="ignore"):
        position = (np.log(dwell) - log_lo) / (log_hi - log_lo) * num_bins
    bins = np.clip(np.floor(np.nan_to_num(position, neginf=-1.0)), 0, num_bins - 1).astype(int)
    return pd.DataFrame({
        "valid_read": valid.astype(int),
        "valid_read_rule": rule,
        "ndt": np.where(clicked, reference_ndt(dwell, **ndt), 0.0),
        "log_dwell": np.where(clicked, np.log1p(dwell), 0.0),
        "dwell_bin": np.where(clicked, bins, -1),
    })
