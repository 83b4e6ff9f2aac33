-- Sends requests on one wrk thread and prints BENCH_LIMIT_REACHED after <count> responses:
-- wrk itself only stops at the end of its duration or on SIGINT, which bench.py then sends.
-- Arguments after `--`: <count> <path>. The path "random" makes every request's path distinct,
-- half of them matching no route (/bench/random/<n>/<hex>), half the item route with an id
-- that does not exist (/api/v1/items/<n><digits>): both answer 404.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local limit, path
local sent, received = 0, 0

init = function(args)
  limit = tonumber(args[1])
  path = args[2]
  math.randomseed(os.time())
end

request = function()
  sent = sent + 1
  if path == "random" and sent % 2 == 0 then
    return wrk.format("GET", string.format("/bench/random/%d/%08x", sent, math.random(0, 0x7fffffff)))
  elseif path == "random" then
    return wrk.format("GET", string.format("/api/v1/items/%d%09d", sent, math.random(0, 999999999)))
  end
  return wrk.format("GET", path)
end

response = function(status, headers, body)
  received = received + 1
  if received == limit then
    io.write("BENCH_LIMIT_REACHED\n")
    io.flush()
  end
end
