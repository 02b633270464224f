-- wrk's script for scripts/bench-api.sh (make bench-api), run on the web host:
--
--   wrk -s wrk.lua URL -- get|post [TOKEN] [X_FORWARDED_PROTO]
--
-- get   the URL as it is (GET /healthz, GET /api/limited)
-- post  POST /api/tasks as the API client with TOKEN: an authenticated "add"
--       task, {"task": "add", "args": {"x": 1, "y": 2}} (answer 202)
-- X_FORWARDED_PROTO, when given, is sent as X-Forwarded-Proto: the direct
-- side sends "https", as the proxy does, so gunicorn (which believes it from
-- 127.0.0.1 in the bench inventory) hands Django the same scheme either way.
--
-- The request is built once per thread (wrk.format after init) and sent on
-- every keep-alive connection; no per-response Lua, so the client costs the
-- same CPU per request on both sides but for TLS. At the end, one line:
--   wrk,requests,duration_us,p50_us,p99_us,max_us,connect,read,write,status,timeout
-- (errors by kind; "status" counts answers >= 400).

function init(args)
  local mode, token, proto = args[1], args[2], args[3]
  if proto ~= nil and proto ~= "" then
    wrk.headers["X-Forwarded-Proto"] = proto
  end
  if mode == "post" then
    wrk.method = "POST"
    wrk.body = '{"task": "add", "args": {"x": 1, "y": 2}}'
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Authorization"] = "Bearer " .. token
  elseif mode ~= "get" then
    error("wrk.lua: first argument must be get or post, got " .. tostring(mode))
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
