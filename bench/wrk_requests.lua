-- wrk script of bench/http_bench.py: the requests to send, read from the environment, and a JSON summary.
--
--   WRK_METHOD       GET (default) or POST
--   WRK_PATHS        request paths separated by newlines; each connection cycles through them
--   WRK_HEADERS      "Name: value" lines separated by newlines (e.g. the bearer token)
--   WRK_BODY         the request body (sent with Content-Type: application/json)
--   WRK_IDEMPOTENCY  "1": a unique Idempotency-Key header on every request
--   WRK_NONCE        makes the keys unique across runs against the same database
--   WRK_VARIANTS     optional "Authorization value<TAB>body" lines: each request takes the next one in turn (the
--                    same path), so that a run records as many clerks of many committees, not one
--
-- done() prints one line "WRK_JSON {...}": request count, duration, errors and latency percentiles (microseconds).

local thread_counter = 0

function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("thread_id", thread_counter)
end

local function split_lines(text)
  local items = {}
  for line in string.gmatch(text or "", "[^\n]+") do
    table.insert(items, line)
  end
  return items
end

local method, body, idempotent, nonce
local headers = {}
local prepared = {}
local paths = {}
local variants = {}
local position = 0
local sequence = 0

function init(args)
  method = os.getenv("WRK_METHOD") or "GET"
  body = os.getenv("WRK_BODY")
  idempotent = os.getenv("WRK_IDEMPOTENCY") == "1"
  nonce = os.getenv("WRK_NONCE") or tostring(os.time())
  for _, line in ipairs(split_lines(os.getenv("WRK_HEADERS"))) do
    local name, value = string.match(line, "^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  for _, line in ipairs(split_lines(os.getenv("WRK_VARIANTS"))) do
    local authorization, variant_body = string.match(line, "^([^\t]*)\t(.*)$")
    table.insert(variants, { authorization = authorization, body = variant_body })
  end
  if body or #variants > 0 then
    headers["Content-Type"] = "application/json"
  end
  paths = split_lines(os.getenv("WRK_PATHS"))
  if #paths == 0 then
    paths = { "/" }
  end
  -- Requests that never change are formatted once, so the generator spends its time sending, not building.
  if not idempotent then
    for i, path in ipairs(paths) do
      prepared[i] = wrk.format(method, path, headers, body)
    end
  end
end

function request()
  position = position % #paths + 1
  if not idempotent and #variants == 0 then
    return prepared[position]
  end
  sequence = sequence + 1
  if idempotent then
    headers["Idempotency-Key"] = string.format("bench-%s-%d-%d", nonce, thread_id, sequence)
  end
  if #variants > 0 then
    local variant = variants[sequence % #variants + 1]
    headers["Authorization"] = variant.authorization
    return wrk.format(method, paths[position], headers, variant.body)
  end
  return wrk.format(method, paths[position], headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"mean_us":%.1f,"max_us":%.0f,' ..
    '"p50_us":%.0f,"p90_us":%.0f,"p95_us":%.0f,"p99_us":%.0f}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99)))
end
