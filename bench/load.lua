-- wrk script: every request is a different, pre-built one, read from the file named after "--".
-- Each line is "METHOD<TAB>PATH<TAB>AUTHORIZATION<TAB>BODY" (the last two may be empty). Thread k
-- of n sends lines k, k+n, k+2n...; a thread that runs out starts again and counts the repeats.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local requests = {}
local position = 0
repeats, status_2xx, status_3xx, status_other = 0, 0, 0, 0

function init(args)
  local path, count = args[1], tonumber(args[2])
  local n = 0
  for line in io.lines(path) do
    if n % count == thread_id then
      local method, target, authorization, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {}
      if authorization ~= "" then headers["Authorization"] = authorization end
      if body ~= "" then headers["Content-Type"] = "application/json" else body = nil end
      table.insert(requests, wrk.format(method, target, headers, body))
    end
    n = n + 1
  end
end

function request()
  position = position + 1
  if position > #requests then
    position = 1
    repeats = repeats + 1
  end
  return requests[position]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    status_2xx = status_2xx + 1
  elseif status >= 300 and status < 400 then
    status_3xx = status_3xx + 1
  else
    status_other = status_other + 1
  end
end

function done(summary, latency, requests)
  local totals = {repeats = 0, status_2xx = 0, status_3xx = 0, status_other = 0, sent = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      if name ~= "sent" then totals[name] = totals[name] + thread:get(name) end
    end
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"status_2xx": %d, "status_3xx": %d, "status_other": %d, "repeats": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, totals.status_2xx, totals.status_3xx, totals.status_other, totals.repeats,
    errors.connect, errors.read, errors.write, errors.timeout))
end
