"""A small slice of the real MovieLens-100K (its first users), as a CSV genrec can load."""

from __future__ import annotations

from pathlib import Path


def write_slice(data_dir: Path, path: Path, n_users: int = 150, no_time: bool = False) -> Path:
    """Every record of users 1..n_users from ``u.data`` (timestamps zeroed with ``no_time``)."""
    rows = ["user_id,item_id,rating,timestamp"]
    for line in (data_dir / "ml-100k" / "u.data").read_text().splitlines():
        user, item, rating, ts = line.split("\t")
        if int(user) <= n_users:
            rows.append(f"{user},{item},{rating},{0 if no_time else ts}")
    path.write_text("\n".join(rows) + "\n")
    return path
