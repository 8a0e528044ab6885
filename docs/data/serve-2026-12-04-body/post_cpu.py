"""In-process CPU per request of the POST routes: 32 coroutines call the ASGI app directly
(no uvicorn, no sockets), 1 s warm-up then 4 s measured, access log off; CPU of all threads.

    PYTHONPATH=<checkout> .venv/bin/python post_cpu.py /tmp/bench-store predict|adhoc|interactions [profile]

``profile`` adds a cProfile listing (cumulative). Run from the checkout to measure
(``cd /tmp/before`` for a worktree of the commit before).
"""
import asyncio, cProfile, json, os, pstats, sys, tempfile, time
tmp = tempfile.mkdtemp()
os.environ.update(GENREC_STORE_DIR=sys.argv[1], GENREC_DATABASE_URL=f"sqlite:///{tmp}/g.db",
    GENREC_BENCH_ENDPOINTS="true", GENREC_ACCESS_LOG="false", GENREC_TORCH_THREADS="1")
KIND = sys.argv[2]
PROFILE = len(sys.argv) > 3 and sys.argv[3] == "profile"
import uvloop
from app.main import create_app
app = create_app()

def body(c, n):
    u = (c * 7919 + n) % 943 + 1
    if KIND == "predict":
        return "/v1/predictions", json.dumps({"user_id": str(u), "item_ids": [str(i) for i in range(1, 11)], "model": "biased-mf"}).encode()
    if KIND == "adhoc":
        return "/v1/recommendations", json.dumps({"history": [{"item_id": str(i)} for i in range(u % 50 + 1, u % 50 + 11)], "k": 10}).encode()
    return "/v1/interactions", json.dumps({"interactions": [{"user_id": f"new-{c}-{n}", "item_id": "5", "rating": 4}, {"user_id": f"new-{c}-{n}", "item_id": "7", "rating": 4}]}).encode()

async def one(c, n):
    path, b = body(c, n)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", str(len(b)).encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000), "state": {}}
    sent = []
    async def receive(): return {"type": "http.request", "body": b, "more_body": False}
    async def send(m): sent.append(m)
    await app(scope, receive, send)
    assert sent[0]["status"] in (200, 201), (sent[0], sent[1:])

async def drive(seconds):
    count = 0
    async def worker(c, stop):
        nonlocal count
        n = 0
        while time.perf_counter() < stop:
            await one(c, n); n += 1; count += 1
    await asyncio.gather(*(worker(c, time.perf_counter() + seconds) for c in range(32)))
    return count

async def main():
    async with app.router.lifespan_context(app):
        await drive(1.0)
        prof = cProfile.Profile() if PROFILE else None
        cpu = time.process_time()
        if prof: prof.enable()
        n = await drive(4.0)
        if prof: prof.disable()
        cpu = time.process_time() - cpu
        print(f"{KIND}: {n} requests, {cpu / n * 1e6:.0f} us CPU per request (all threads)")
        if prof:
            st = pstats.Stats(prof); st.sort_stats("cumulative").print_stats(45)
uvloop.run(main())
