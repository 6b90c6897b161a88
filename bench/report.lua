-- wrk script: POST /v1/reports with the demo key; each request a distinct client id.
wrk.method = "POST"
wrk.headers["x-api-key"] = "secret"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/reports", nil,
    string.format('{"hostname":"db1","id":"bench-%d-%d"}', math.random(1, 1e9), n))
end
