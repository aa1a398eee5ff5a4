-- wrk script for scripts/bench-http.sh: every request carries the next of the
-- tokens in $BENCH_TOKENS (one per line) as `Authorization: Bearer <token>`,
-- rotating over the file (a cache helps only if it holds the whole file);
-- responses other than 200 are counted, and so are responses other than the
-- status $BENCH_EXPECT (default 200: 401 for a file of forged tokens), and
-- done() prints one machine-readable line (BENCH key=value ...) that the
-- script parses. The requests are formatted once in init(); request() only
-- picks the next one.

local reqs = {}
local n = 0
local next_i = 0
local threads = {}

-- Read by done() through thread:get, hence global in each thread's Lua state.
non200 = 0
unexpected = 0

local expect = tonumber(os.getenv("BENCH_EXPECT") or "200")

function setup(thread)
   threads[#threads + 1] = thread
end

function init(args)
   local path = os.getenv("BENCH_TOKENS")
   assert(path and path ~= "", "BENCH_TOKENS is not set")
   local f = assert(io.open(path, "r"))
   for line in f:lines() do
      line = line:gsub("\r$", "")
      if #line > 0 then
         n = n + 1
         reqs[n] = wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. line })
      end
   end
   f:close()
   assert(n > 0, "no tokens in " .. path)
end

function request()
   next_i = next_i % n + 1
   return reqs[next_i]
end

function response(status, headers, body)
   if status ~= 200 then
      non200 = non200 + 1
   end
   if status ~= expect then
      unexpected = unexpected + 1
   end
end

function done(summary, latency, requests)
   local bad, wrong = 0, 0
   for _, t in ipairs(threads) do
      bad = bad + (t:get("non200") or 0)
      wrong = wrong + (t:get("unexpected") or 0)
   end
   local e = summary.errors
   if wrong > 0 then
      io.stderr:write(string.format("rotate.lua: %d responses were not %d\n", wrong, expect))
   end
   io.write(string.format(
      "BENCH requests=%d duration_us=%d non200=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p99_us=%d expect=%d unexpected=%d\n",
      summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(99), expect, wrong))
end
