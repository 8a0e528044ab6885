-- serve_bench's request kinds for wrk (benchmarks/serve_bench.py --load wrk).
--
--   wrk -t2 -c32 -d5s --timeout 10s -s benchmarks/wrk/serve_bench.lua http://127.0.0.1:PORT -- mix
--
-- The one argument after "--" is the kind: constant, recs, recs-rules, predict,
-- interactions, mix (or one of its parts) or similar. Each request is built as
-- request_bytes() in serve_bench.py builds it, with wrk's thread number in place of
-- the connection number (wrk's request() runs per thread, shared by that thread's
-- connections; wrk also builds one request before its connections start and never
-- sends it, so its n-th request sent is the Python client's n+1-th:
-- tests/benchmarks/test_serve_bench_wrk.py). done() prints one JSON line, which
-- serve_bench.run_wrk reads.

-- BENCH_RULES (serve_bench --rules-query) replaces the typical rules of recs-rules.
local RULES = os.getenv("BENCH_RULES")
  or "filter=genres%3AComedy%2CDrama%2CAction&filter=year%3E%3D1980&boost=year%3E%3D1995%5E0.5"
local MIX = { { 60, "recs" }, { 15, "mix-write" }, { 10, "mix-new-recs" }, { 10, "mix-adhoc" }, { 5, "predict" } }
-- WRK_MIX="60:recs,15:mix-write,..." replaces the mix (shares out of 100), e.g. to leave one
-- kind out (docs/data/serve-2026-12-04-body/mix-parts/run.sh).
if os.getenv("WRK_MIX") then
  MIX = {}
  for share, which in string.gmatch(os.getenv("WRK_MIX"), "(%d+):([%w-]+)") do
    MIX[#MIX + 1] = { tonumber(share), which }
  end
end
local N_USERS, N_ITEMS = 943, 1000
local JSON = { ["Content-Type"] = "application/json" }
-- BENCH_API_KEY (serve_bench --api-key): sent as a bearer key with every request. wrk.format
-- uses wrk.headers only for a request given no headers of its own, so both tables get it.
local GET = nil
local API_KEY = os.getenv("BENCH_API_KEY")
if API_KEY and API_KEY ~= "" then
  GET = { ["Authorization"] = "Bearer " .. API_KEY }
  JSON["Authorization"] = GET["Authorization"]
end

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  kind = args[1] or "recs"
  n = 0
end

local function mix_kind(conn, i)
  local slot = (i * 37 + conn * 11) % 100
  for _, share_kind in ipairs(MIX) do
    if slot < share_kind[1] then
      return share_kind[2]
    end
    slot = slot - share_kind[1]
  end
end

local function item_list(start, count)
  local ids = {}
  for j = 0, count - 1 do
    ids[#ids + 1] = '"' .. tostring(start + j + 1) .. '"'
  end
  return ids
end

local function build(which, conn, i)
  if which == "mix" then
    which = mix_kind(conn, i)
  end
  if which == "constant" then
    return wrk.format("GET", "/v1/_bench/constant", GET)
  end
  if which == "mix-new-recs" then
    return wrk.format("GET", string.format("/v1/users/mix-%d-%d/recommendations?k=10", conn, math.floor(i / 20)), GET)
  end
  if which == "similar" then
    return wrk.format("GET", "/v1/items/" .. tostring((conn * 7919 + i) % N_ITEMS + 1) .. "/similar?k=10", GET)
  end
  local user = tostring((conn * 7919 + i) % N_USERS + 1)
  if which == "recs" or which == "recs-rules" then
    local rules = which == "recs-rules" and ("&" .. RULES) or ""
    return wrk.format("GET", "/v1/users/" .. user .. "/recommendations?k=10" .. rules, GET)
  end
  local start = (i * 10) % (N_ITEMS - 10)
  if which == "predict" then
    local body = string.format('{"user_id": "%s", "item_ids": [%s], "model": "biased-mf"}',
      user, table.concat(item_list(start, 10), ", "))
    return wrk.format("POST", "/v1/predictions", JSON, body)
  end
  if which == "interactions" then
    local body = string.format('{"user_id": "bench-%d-%d", "item_id": "%d", "rating": 4}',
      conn, i, i % N_ITEMS + 1)
    return wrk.format("POST", "/v1/interactions", JSON, body)
  end
  if which == "mix-write" then
    local user_new = string.format("mix-%d-%d", conn, math.floor(i / 20))
    local rows = {}
    for j = 0, 1 do
      rows[#rows + 1] = string.format('{"user_id": "%s", "item_id": "%d", "rating": 4}',
        user_new, (i + j * 500) % N_ITEMS + 1)
    end
    return wrk.format("POST", "/v1/interactions", JSON, '{"interactions": [' .. table.concat(rows, ", ") .. ']}')
  end
  if which == "mix-adhoc" then
    local history = {}
    for _, id in ipairs(item_list(start, 10)) do
      history[#history + 1] = '{"item_id": ' .. id .. '}'
    end
    return wrk.format("POST", "/v1/recommendations", JSON,
      '{"history": [' .. table.concat(history, ", ") .. '], "k": 10}')
  end
  error("unknown kind " .. tostring(which))
end

function request()
  local req = build(kind, id, n)
  n = n + 1
  return req
end

function done(summary, latency, requests)
  local e = summary.errors
  local failed = e.status + e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    '{"requests": %d, "seconds": %.6f, "p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, '
      .. '"non2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, e.status, failed - e.status))
end
