-- wrk script: LIMIT (default 100,000) reports, each a new event: report n is for cluster
-- `c{n % 10000}` (bench/dashboard.sh writes that inventory) on the node other than its
-- previous report's, so no report merges; after LIMIT, only GET /healthz.
wrk.headers["x-api-key"] = "secret"
wrk.headers["Content-Type"] = "application/json"
local limit = tonumber(os.getenv("LIMIT") or "100000")
local n = 0
request = function()
  n = n + 1
  if n > limit then
    return wrk.format("GET", "/healthz")
  end
  local c = (n - 1) % 10000
  local node = (math.floor((n - 1) / 10000) % 2 == 0) and "a" or "b"
  return wrk.format("POST", "/v1/reports", nil,
    string.format('{"hostname":"n%d%s","id":"fill-%d"}', c, node, n))
end
