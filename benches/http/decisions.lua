-- wrk script of benches/http/decisions.sh: POST /v1/decisions/DECISION
-- (check, the default, or enroll) for a random
-- name of the N generated ones or beyond (about half registered), as a CA
-- caller (SECRET: its bearer secret).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SECRET")
local n = tonumber(os.getenv("N") or "100000")
local path = "/v1/decisions/" .. (os.getenv("DECISION") or "check")
request = function()
  local i = math.random(0, 2 * n - 1)
  local body = string.format('{"procedure":"routers","fqdn":"host%d.fleet%d.example.com"}', i, i % 100)
  return wrk.format(nil, path, nil, body)
end
