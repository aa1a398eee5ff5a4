-- wrk script for scripts/soak.sh: every request carries the next line of
-- $SOAK_TOKENS as `Authorization: Bearer <line>`, rotating over the file; a
-- line "-" sends no Authorization header at all. The file mixes valid and
-- invalid tokens, so answers are counted by status (200, 401, anything
-- else) rather than checked one by one: wrk's response() does not say which
-- request it answers. done() prints one machine-readable line (SOAK
-- key=value ...) that the script parses. The requests are formatted once in
-- init(); request() only picks the next one.

local reqs = {}
local n = 0
local next_i = 0
local threads = {}

-- Read by done() through thread:get, hence global in each thread's Lua state.
s200 = 0
s401 = 0
other = 0

function setup(thread)
   threads[#threads + 1] = thread
end

function init(args)
   local path = os.getenv("SOAK_TOKENS")
   assert(path and path ~= "", "SOAK_TOKENS is not set")
   local f = assert(io.open(path, "r"))
   for line in f:lines() do
      line = line:gsub("\r$", "")
      if line == "-" then
         n = n + 1
         reqs[n] = wrk.format("GET", "/")
      elseif #line > 0 then
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
   if status == 200 then
      s200 = s200 + 1
   elseif status == 401 then
      s401 = s401 + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local a, b, c = 0, 0, 0
   for _, t in ipairs(threads) do
      a = a + (t:get("s200") or 0)
      b = b + (t:get("s401") or 0)
      c = c + (t:get("other") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "SOAK requests=%d duration_us=%d s200=%d s401=%d other=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p99_us=%d\n",
      summary.requests, summary.duration, a, b, c, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(99)))
end
