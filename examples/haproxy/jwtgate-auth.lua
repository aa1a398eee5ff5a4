-- jwtgate in front of HAProxy's backends: an `http-request` action that asks
-- jwtgate about each request before HAProxy routes it (HAProxy has no
-- auth_request; this is its counterpart, on HAProxy's own Lua httpclient,
-- 2.5 or later, with no library to install).
--
--   global
--       lua-load /etc/haproxy/jwtgate-auth.lua
--   frontend api
--       http-request lua.jwtgate-auth http://127.0.0.1:8080/ x-jwt-sub,x-jwt-iss,x-jwt-kid
--
-- The first argument is jwtgate's URL, the second the identity headers to
-- take from jwtgate's 200.
-- jwtgate runs with forwarded = "x-forwarded" and HAProxy's address in
-- trusted_proxies (haproxy.cfg and README, "HAProxy").
--
-- What it does, in order:
-- 1. removes the identity headers from the client's request, whatever the
--    answer turns out to be, so a client's own X-Jwt-Sub (or X_Jwt_Sub, which
--    CGI-style backends read as the same) never reaches a backend;
-- 2. sends jwtgate a GET with the client's headers (the token's header or
--    cookie among them) and the original method, scheme, host and path in
--    X-Forwarded-Method, -Proto, -Host and -Uri (the client's own
--    X-Forwarded-* are not passed);
-- 3. on 200, sets each identity header jwtgate answered with a value; on any
--    other answer, ends the request with jwtgate's status, challenge,
--    outcome and body; when jwtgate cannot be reached or times out, ends it
--    with 503: nothing passes unjudged.

-- Not passed to jwtgate: hop-by-hop headers, the body's framing (the check
-- has no body), and the forwarded headers this script writes itself.
local not_forwarded = {
    ["connection"] = true, ["keep-alive"] = true, ["te"] = true,
    ["trailer"] = true, ["transfer-encoding"] = true, ["upgrade"] = true,
    ["proxy-connection"] = true, ["content-length"] = true,
    ["expect"] = true, ["host"] = true,
    ["x-forwarded-method"] = true, ["x-forwarded-proto"] = true,
    ["x-forwarded-host"] = true, ["x-forwarded-uri"] = true,
    ["x-forwarded-for"] = true, ["forwarded"] = true,
}

-- What a client gets from a refusal, besides the status and body.
local relayed = { "www-authenticate", "x-jwtgate-outcome", "content-type", "retry-after", "cache-control" }

-- HAProxy lists a request's header values from index 0, the httpclient's
-- from 1: every value, in order, whichever it is.
local function values(list)
    local out = {}
    if list == nil then return out end
    if list[0] ~= nil then out[#out + 1] = list[0] end
    for _, value in ipairs(list) do out[#out + 1] = value end
    return out
end

local function split(csv)
    local out = {}
    for name in string.gmatch(csv, "[^,%s]+") do out[#out + 1] = string.lower(name) end
    return out
end

-- CGI, WSGI, Rack and PHP read X_Jwt_Sub and X-Jwt-Sub as one header, and
-- HAProxy passes names with underscores on: a name is compared as those
-- applications will read it.
local function folded(name)
    return (string.gsub(string.lower(name), "_", "-"))
end

local function refuse(txn, status, body)
    txn:done({
        status = status,
        headers = { ["content-type"] = { "text/plain" }, ["cache-control"] = { "no-store" } },
        body = body,
    })
end

core.register_action("jwtgate-auth", { "http-req" }, function(txn, url, identity_csv)
    local identity = split(identity_csv)
    local is_identity = {}
    for _, name in ipairs(identity) do is_identity[folded(name)] = true end
    local client = txn.http:req_get_headers()
    for name in pairs(client) do
        if is_identity[folded(name)] then
            txn.http:req_del_header(name)
            client[name] = nil
        end
    end

    local hosts = values(client["host"])
    if #hosts ~= 1 then
        -- No Host, or several: the backend could read either; refuse.
        refuse(txn, 400, "a request needs exactly one Host header\n")
        return
    end
    local headers = {}
    for name, list in pairs(client) do
        if not not_forwarded[name] then
            headers[name] = values(list)
        end
    end
    headers["x-forwarded-method"] = { txn.f:method() }
    headers["x-forwarded-proto"] = { txn.f:ssl_fc() and "https" or "http" }
    headers["x-forwarded-host"] = { hosts[1] }
    headers["x-forwarded-uri"] = { txn.f:pathq() }

    local ok, answer = pcall(function()
        return core.httpclient():get({ url = url, headers = headers, timeout = 2000 })
    end)
    if not ok or answer == nil or answer.status == nil or answer.status == 0 then
        refuse(txn, 503, "the authorization service did not answer\n")
        return
    end

    if answer.status == 200 then
        local answered = answer.headers or {}
        for _, name in ipairs(identity) do
            for _, value in ipairs(values(answered[name])) do
                if value ~= "" then
                    txn.http:req_add_header(name, value)
                end
            end
        end
        return
    end

    local reply = { status = answer.status, headers = {}, body = answer.body or "" }
    local answered = answer.headers or {}
    for _, name in ipairs(relayed) do
        local list = values(answered[name])
        if #list > 0 then reply.headers[name] = list end
    end
    txn:done(reply)
end, 2)
