"""Generate odd-shaped interaction files for genrec testing. Usage: python gen.py [DIR] (writes DIR/*, default /tmp/genrec-odd-data)."""

import csv
import gzip
import sys
from pathlib import Path

import numpy as np
import pandas as pd

D = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/genrec-odd-data")
D.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)


def base(n_users=60, n_items=40, per_user=12, seed=0):
    r = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        g = u % 3
        items = r.choice(n_items, size=per_user, replace=False)
        for i in items:
            rating = int(np.clip(round(3 + (1.5 if i % 3 == g else -1) + r.normal(0, 0.7)), 1, 5))
            rows.append((str(u), str(i), rating, 1_000_000_000 + len(rows) * 60))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


b = base()
b.to_csv(D / "base.csv", index=False)  # normal small explicit
b[["user_id", "item_id"]].to_csv(D / "implicit.csv", index=False)  # implicit, no timestamps
b[["user_id", "item_id", "timestamp"]].to_csv(D / "implicit_ts.csv", index=False)
b.assign(rating=4).to_csv(D / "ratings_equal.csv", index=False)  # all ratings equal
b.assign(rating=(b.rating - 1) / 4.0).to_csv(D / "ratings01.csv", index=False)  # 0..1 scale
b.assign(rating=(b.rating - 1) * 25).to_csv(D / "ratings100.csv", index=False)  # 0..100 scale
b.assign(rating=b.rating - 3).to_csv(D / "ratings_neg.csv", index=False)  # -2..2
b.assign(timestamp=1_500_000_000).to_csv(D / "ts_equal.csv", index=False)  # all ts equal
b.drop(columns="timestamp").to_csv(D / "no_ts.csv", index=False)  # no timestamp col
# tiny shapes
b[b.user_id.isin(["0", "1", "2"])].to_csv(D / "three_users.csv", index=False)
b[b.user_id == "0"].to_csv(D / "one_user.csv", index=False)
one_item = pd.DataFrame(
    {
        "user_id": [str(u) for u in range(30)],
        "item_id": "7",
        "rating": rng.integers(1, 6, 30),
        "timestamp": 1_000_000_000 + np.arange(30),
    }
)
one_item.to_csv(D / "one_item.csv", index=False)  # all interactions on one item
one_each = b.groupby("user_id").head(1)
one_each.to_csv(D / "one_per_user.csv", index=False)  # each user one interaction
# string ids with unicode, spaces, commas (quoted)
s = b.copy()
s["user_id"] = "user, " + s.user_id + " Zoë 東京"
s["item_id"] = 'item "' + s.item_id + '" / ß,x'
s.to_csv(D / "strings.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
# duplicates: same user-item twice with different ratings
dup = pd.concat([b, b.assign(rating=6 - b.rating, timestamp=b.timestamp + 10)]).sort_values(
    "timestamp"
)
dup.to_csv(D / "dups.csv", index=False)
b.to_parquet(D / "base.parquet", index=False)
with gzip.open(D / "base.csv.gz", "wt") as f:
    b.to_csv(f, index=False)
# 200k rows synthetic
n = 200_000
big = pd.DataFrame(
    {
        "user_id": rng.integers(0, 5000, n),
        "item_id": np.minimum(rng.zipf(1.3, n), 3000),
        "rating": rng.integers(1, 6, n),
        "timestamp": 1_000_000_000 + rng.integers(0, 10**7, n),
    }
)
big.to_csv(D / "big200k.csv", index=False)
print(sorted(p.name for p in D.iterdir()))
# one user who interacted with every item of the catalogue (otherwise normal data)
ua = pd.concat(
    [
        b,
        pd.DataFrame(
            {
                "user_id": "heavy",
                "item_id": [str(i) for i in range(40)],
                "rating": 5,
                "timestamp": 1_100_000_000 + np.arange(40),
            }
        ),
    ]
)
ua.to_csv(D / "user_all_items.csv", index=False)
# 0..1 scale with a long tail of items rated once (cold items in any split)
tail = b.assign(rating=(b.rating - 1) / 4.0).copy()
tail.loc[tail.index % 4 == 0, "item_id"] = "tail" + tail.index[tail.index % 4 == 0].astype(str)
tail.to_csv(D / "ratings01_tail.csv", index=False)
