"""The labelling of SPEC §3 written in plain pandas, vectorized: the baseline for
bench_labels.py. Reads CSV logs and a stats artifact, writes CSV with the five labels.

    python benchmarks/pandas_labels.py --input='logs/*.csv.gz' --stats=STATS --output=out.csv[.gz]
"""

import argparse
import glob
import json
import os

import numpy as np
import pandas as pd

DAY = 86_400


def read_table(directory, dtype):
    shards = sorted(glob.glob(os.path.join(directory, "part-*.csv")))
    return pd.concat([pd.read_csv(s, dtype=dtype, keep_default_na=False) for s in shards])


def label(frame, stats, items, user_days):
    rules = stats["rules"]
    ndt = stats["ndt"]
    dwell = frame["dwell_time"].to_numpy(float)
    clicked = frame["click"].to_numpy() == 1
    day = frame["timestamp"].to_numpy() // DAY
    user = frame["user_id"].astype(str)
    # T2: per (user, day) counts from these logs on covered days, else from the artifact.
    covered = np.unique(day)
    own = (pd.DataFrame({"user_id": user[clicked], "day": day[clicked]})
           .groupby(["user_id", "day"]).size().rename("clicks").reset_index())
    history = user_days[~user_days["day"].isin(covered)]
    counts = pd.concat([own, history[["user_id", "day", "clicks"]]])
    needed = pd.DataFrame({"user_id": user, "day": day}).drop_duplicates()
    window = needed.assign(window=0)
    for back in range(rules["light_user_days"]):
        shifted = counts.assign(day=counts["day"] + back)
        merged = window.merge(shifted, on=["user_id", "day"], how="left")
        window["window"] += merged["clicks"].fillna(0).to_numpy(np.int64)
    per_row = pd.DataFrame({"user_id": user, "day": day}).merge(
        window, on=["user_id", "day"], how="left")["window"].to_numpy()
    p10 = frame["item_id"].astype(str).map(items.set_index("item_id")["p10"]).to_numpy(float)
    t1 = dwell > (stats["x_l"] if rules["t1_threshold"] is None else rules["t1_threshold"])
    t2 = per_row < rules["light_user_clicks"]
    t3 = ~np.isnan(p10) & (dwell > np.nan_to_num(p10, nan=np.inf))
    valid = clicked & (dwell >= rules["min_dwell"]) & (t1 | t2 | t3)
    out = frame.copy()
    out["valid_read"] = valid.astype(int)
    out["valid_read_rule"] = np.where(~valid, 0, np.where(t1, 1, np.where(t2, 2, 3)))
    value = ndt["A"] / (1 + np.exp(-(dwell - ndt["offset"]) / ndt["tau"])) - ndt["B"]
    # float32, as the project writes them (9 significant digits, not 17)
    out["ndt"] = np.where(clicked, np.maximum(value, 0), 0.0).astype(np.float32)
    out["log_dwell"] = np.where(clicked, np.log1p(dwell), 0.0).astype(np.float32)
    edges = np.asarray(stats["dwell_bin_edges"])[1:-1]
    out["dwell_bin"] = np.where(clicked, np.searchsorted(edges, dwell, side="right"), -1)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--input")
    parser.add_argument("--stats")
    parser.add_argument("--output")
    args = parser.parse_args()
    stats = json.load(open(os.path.join(args.stats, "stats.json")))
    items = read_table(os.path.join(args.stats, "items"), {"item_id": str})
    user_days = read_table(os.path.join(args.stats, "user_days"), {"user_id": str})
    frame = pd.concat([pd.read_csv(p, keep_default_na=False, dtype={"user_id": str,
                                                                     "item_id": str})
                       for p in sorted(glob.glob(args.input))], ignore_index=True)
    # gzip at level 1 without a time stamp, as the project's label job writes (pandas' own
    # default, level 9, cost it about 15 times the compression time)
    compression = ({"method": "gzip", "compresslevel": 1, "mtime": 0}
                   if args.output.endswith(".gz") else None)
    label(frame, stats, items, user_days).to_csv(args.output, index=False,
                                                 compression=compression)


if __name__ == "__main__":
    main()
