-- POST a JSON body to one path; used by bench/load.py.
-- args: path, expected status, body template, run tag, account count.
-- In the template {{EMAIL}} becomes a fresh address per request, and {{ACCOUNT}} one
-- of the `count` pre-created accounts (login-<run>-<i>@bench.example), in turn.
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  path, expected, template, tag = args[1], tonumber(args[2]), args[3], args[4]
  accounts = tonumber(args[5]) or 1
  counter, unexpected = 0, 0
end

function request()
  counter = counter + 1
  local fresh = string.format("w%s-%d-%d@bench.example", tag, id, counter)
  local account = string.format("login-%s-%d@bench.example", tag, (counter * 7 + id) % accounts)
  local body = template:gsub("{{EMAIL}}", fresh):gsub("{{ACCOUNT}}", account)
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
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
