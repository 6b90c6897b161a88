-- wrk script: POST /v1/reports with the demo key, each request a distinct client id, for a
-- node of one of 10,000 clusters (`c{i}`, nodes `n{i}a`/`n{i}b`; bench/replicas.sh writes
-- that inventory), so reports of different clusters do not wait for one another.
-- Each wrk thread has its own Lua state with the same random sequence, so the ids carry the
-- thread's number (given in `setup`) and wrk's process id (`WRK_RUN`, set by the caller)
-- to stay distinct across threads and runs.
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
request = function()
  n = n + 1
  local c = math.random(0, 9999)
  local node = (math.random(0, 1) == 0) and "a" or "b"
  return wrk.format(nil, "/v1/reports", nil,
    string.format('{"hostname":"n%d%s","id":"b-%s-%d-%d"}', c, node, run, tid, n))
end
