-- A request with a bearer token taken in turn from a file (one token a line), and an
-- optional JSON body; used by bench/load.py for /verify, PATCH /me and their floors.
-- args: method, path, expected status, tokens file, body (may be empty).
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  method, path, expected, body = args[1], args[2], tonumber(args[3]), args[5] or ""
  tokens = {}
  for line in io.lines(args[4]) do
    if #line > 0 then
      table.insert(tokens, line)
    end
  end
  counter, unexpected = id or 0, 0
end

function request()
  counter = counter + 1
  local token = tokens[(counter % #tokens) + 1]
  local headers = {["Authorization"] = "Bearer " .. token}
  if #body > 0 then
    headers["Content-Type"] = "application/json"
    return wrk.format(method, path, headers, body)
  end
  return wrk.format(method, path, headers)
end

function response(status, headers, body)
  if status ~= expected then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("unexpected")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"unexpected": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), bad, e.connect + e.read + e.write + e.timeout))
end
