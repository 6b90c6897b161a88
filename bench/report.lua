-- wrk script: POST /v1/reports with the demo key for one host (`HOST`, default db1), so every
-- report joins one event; each request a distinct client id. Each
-- wrk thread has its own Lua state with the same random sequence, so the ids carry the
-- thread's number (given in `setup`) and `WRK_RUN` (set it to tell runs apart).
wrk.method = "POST"
wrk.headers["x-api-key"] = "secret"
wrk.headers["Content-Type"] = "application/json"
local threads = 0
setup = function(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local n = 0
local run = os.getenv("WRK_RUN") or "0"
local host = os.getenv("HOST") or "db1"
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/reports", nil,
    string.format('{"hostname":"%s","id":"bench-%s-%d-%d"}', host, run, tid, n))
end
