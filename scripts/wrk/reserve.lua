-- wrk script: every reserve needs a fresh ACTIVE token, so each connection
-- alternates enter (new user) and reserve (with the token that enter gave).
-- Counts successful reservations per thread; done() prints the total.
local threads = {}

function setup(thread)
  -- Unique per run and thread, so repeated runs never reuse a (used) user.
  thread:set("tid", string.format("%d-%d", os.time(), #threads + 1))
  table.insert(threads, thread)
end

function init(args)
  event = args[1] or "bench"
  n = 0
  reserved = 0
  tokens = {}
end

function request()
  local token = table.remove(tokens)
  if token then
    return wrk.format("POST", "/api/v1/tickets/reserve",
      { ["Content-Type"] = "application/json", ["X-Queue-Token"] = token },
      '{"eventId":"' .. event .. '","quantity":1}')
  end
  n = n + 1
  return wrk.format("POST", "/api/v1/queue/enter",
    { ["Content-Type"] = "application/json" },
    string.format('{"eventId":"%s","userId":"w%s-%d"}', event, tid, n))
end

function response(status, headers, body)
  local token = body:match('"token":"([^"]+)"')
  if token then
    table.insert(tokens, token)
  elseif status == 200 and body:find('"reservationId"') then
    reserved = reserved + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("reserved")
  end
  io.write(string.format("reservations: %d\n", total))
end
