"""~200 malformed requests against a running server (odd path ids, query values, bodies,
admin calls with the token); prints every answer that is a 5xx, no answer, or a 4xx whose
body is not JSON, then the counts. Two cases are refused by the Python client itself
(a space in the path), not by the server.
    GENREC_STORE_DIR=/tmp/bench-store GENREC_DATABASE_URL=sqlite:////tmp/sweep/log.db \
      GENREC_ADMIN_TOKEN=tok .venv/bin/genrec serve --port 8111 &
    .venv/bin/python docs/data/serve-2026-12-06-redis-writes/api_sweep.py
"""

import json
import urllib.parse
import urllib.request

B = "http://127.0.0.1:8111"


def req(method, path, body=None, headers=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    r = urllib.request.Request(
        B + path,
        data=data,
        method=method,
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read()[:300]
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:300]
    except Exception as e:
        return -1, repr(e).encode()


weird = [
    "",
    " ",
    "%00",
    "a" * 5000,
    "%F0%9F%98%80",
    "..",
    "%2F",
    "-1",
    "1e309",
    "NaN",
    "null",
    "%C0%AF",
    "\\",
    "%25",
]
cases = []
for u in weird:
    cases.append(("GET", f"/v1/users/{u}/recommendations", None))
    cases.append(("GET", f"/v1/items/{u}/similar", None))
    cases.append(("GET", f"/v1/items/{u}", None))
for q in [
    "k=0",
    "k=-1",
    "k=1000000",
    "k=abc",
    "k=1.5",
    "exclude=%00",
    "exclude=" + ",".join(["1"] * 5000),
    "include=",
    "include=99999",
    "filter=genre:",
    "filter=:x",
    "filter=a",
    "filter=genre=x",
    "boost=x",
    "boost=genre:a:abc",
    "boost=genre:a:1e309",
    "boost=genre:a:nan",
    "cap=genre:0",
    "cap=genre:-1",
    "cap=x",
    "mmr=2",
    "mmr=-0.1",
    "mmr=nan",
    "model=nope",
    "model=",
    "exclude_seen=maybe",
    "exclude_recently_shown=x",
    "k=10&k=20",
    "filter=genre:Drama&filter=genre:Comedy",
    "mmr=inf",
    "mmr=0.5&k=500",
]:
    cases.append(("GET", f"/v1/users/1/recommendations?{q}", None))
    cases.append(("GET", f"/v1/items/1/similar?{q}", None))
bodies = [
    None,
    [],
    {},
    "x",
    1,
    {"user_id": None},
    {"user_id": 1},
    {"user_id": "1", "k": "x"},
    {"history": []},
    {"history": [{"item_id": "1"}] * 10000},
    {"history": [{"item_id": None}]},
    {"history": [{"item_id": "1", "rating": "nan"}]},
    {"history": [{"item_id": "1", "rating": 1e309}]},
    {"user_id": "1", "items": []},
    {"user_id": "1", "items": ["1"] * 100000},
    {"user_id": "1", "items": [None]},
    {"user_id": "x", "item_id": "1"},
    {"interactions": []},
    {"interactions": [{"user_id": "u", "item_id": "1", "rating": float("inf")}]},
    {"interactions": [{"user_id": "u", "item_id": "1", "timestamp": "not a date"}]},
    {"interactions": [{"user_id": "u" * 10000, "item_id": "1"}]},
    {"interactions": [{"user_id": "u", "item_id": "1", "timestamp": "9999-12-31T23:59:59Z"}]},
    {"interactions": [{"user_id": "u", "item_id": "1", "timestamp": -1e20}]},
    {"interactions": [{"user_id": "\u0000", "item_id": "1"}]},
    {"user_id": "\u0000", "items": ["1"]},
    {"history": [{"item_id": "\u0000"}]},
]
for path in ["/v1/recommendations", "/v1/predictions", "/v1/interactions"]:
    for b in bodies:
        cases.append(("POST", path, b))
    cases.append(("POST", path, "RAW"))
for path, b in [
    ("/v1/items/1", {"attributes": {"genre": ["x"] * 100000}}),
    ("/v1/items/%00", {}),
    ("/v1/items/1", {"attributes": {"": 1}}),
    ("/v1/items/1", {"attributes": {"a": {"b": 1}}}),
    ("/v1/items/1", {"attributes": {"a": float("nan")}}),
    ("/v1/items/1", []),
]:
    cases.append(("PUT", path, b))
admin = {"authorization": "Bearer tok"}
for path, b in [
    ("/admin/retrain", {}),
    ("/admin/retrain", {"model": "nope"}),
    ("/admin/tune", {"trials": -1}),
    ("/admin/tune", {"trials": 10**12}),
    ("/admin/experiments", {"name": "", "arms": []}),
    ("/admin/experiments", {"name": "x" * 10000}),
    ("/admin/models/%00/promote", {}),
    ("/admin/models/nope/rollback", {}),
    ("/admin/jobs/%00/cancel", None),
    ("/admin/experiments/nope/stop", None),
]:
    cases.append(("POST", path, b, admin))
for path in [
    "/admin/jobs?limit=-1",
    "/admin/jobs?limit=1000000000000",
    "/admin/jobs?status=zz",
    "/admin/jobs/zz",
    "/admin/experiments/%00",
    "/admin/models",
]:
    cases.append(("GET", path, None, admin))
bad = 0
for c in cases:
    m, p, b = c[:3]
    h = c[3] if len(c) > 3 else None
    if b == "RAW":
        s, out = req(m, p, raw=b'{"user_id": "1", "k": 10', headers=h)
    else:
        s, out = req(m, p, b, headers=h)
    ok_json = True
    try:
        json.loads(out) if out and len(out) < 300 else None
    except Exception:
        ok_json = False
    if s >= 500 or s < 0 or (s >= 400 and not ok_json):
        bad += 1
        print(s, m, p[:80], str(b)[:80], out[:200])
print("cases", len(cases), "bad", bad)
