-- wrk script of the token-endpoint benchmarks (scripts/bench/load.sh, scripts/bench/oidc.sh):
-- GET PATH with an Authorization header drawn at random from the lines of CREDS.
--   wrk ... -s scripts/bench/auth.lua URL -- PATH CREDS
-- Prints one line: RESULT rps=… p50_ms=… p99_ms=… requests=… errors=… non2xx=…
local creds = {}
local path
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("thread_id", threads)
end
function init(args)
    path = args[1]
    for line in io.lines(args[2]) do creds[#creds + 1] = line end
    math.randomseed(os.time() * 1000 + (thread_id or 0))
end
function request()
    return wrk.format("GET", path, { ["Authorization"] = creds[math.random(#creds)] })
end
function done(summary, latency, requests)
    local s = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d errors=%d non2xx=%d\n",
        summary.requests / s, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
