-- jwtgate in front of HAProxy's backends: an `http-request` action that asks
-- jwtgate about each request before HAProxy routes it (HAProxy has no
-- auth_request; this is its counterpart, on HAProxy's own Lua httpclient,
-- 2.6 or later, with no library to install).
--
--   global
--       lua-load /etc/haproxy/jwtgate-auth.lua
--   frontend api
--       http-request lua.jwtgate-auth http://127.0.0.1:8080/ x-jwt-sub,x-jwt-iss,x-jwt-kid,x-jwt-payload
--       http-request deny deny_status 503 unless { var(txn.jwtgate_allowed) -m bool }
--
-- The first argument is jwtgate's URL, the second the headers to take from
-- jwtgate's 200 (the identity headers, and any forward_claims header the
-- backend reads). The deny line is part of the recipe: HAProxy goes on to
-- the next rule after a Lua error, so only the variable this action sets on
-- jwtgate's 200 lets a request on. jwtgate runs with forwarded =
-- "x-forwarded" and HAProxy's address in trusted_proxies (haproxy.cfg and
-- README, "HAProxy").
--
-- What it does, in order:
-- 1. refuses (400) what the backend could read as another request than
--    the one jwtgate judges: a request target that is neither a path nor a
--    URL whose authority is exactly the Host (HAProxy ends an authority at
--    the first "/", a backend at "?", "#" or "@" too), no Host or several,
--    and an h2c upgrade (after a 101 the connection would carry HTTP/2
--    requests nobody checks);
-- 2. removes from the client's request every x-jwt-* and x-jwtgate-* header
--    and the listed ones, whatever the answer turns out to be, under any
--    spelling CGI, WSGI, Rack and PHP read as the same (X_Jwt_Sub is
--    X-Jwt-Sub to them, and HAProxy passes underscores on), and the headers
--    some frameworks take the request's URL or host from (X-Original-URL,
--    X-Rewrite-URL, X-Forwarded-Host, -Uri, -Prefix, -Method): a backend
--    must not route on a URL jwtgate never saw;
-- 3. sends jwtgate a GET with the client's other headers (the token's header
--    or cookie among them) and the original method, scheme, host and path in
--    X-Forwarded-Method, -Proto, -Host and -Uri (the client's own
--    X-Forwarded-* are not passed);
-- 4. on jwtgate's 200 (a 200 with its x-jwtgate-outcome: another service's
--    200 is not an answer), removes the client's headers of any name
--    jwtgate answered, sets each listed header jwtgate answered with a
--    value, and sets txn.jwtgate_allowed; on any other answer, ends the
--    request with jwtgate's status, challenge, outcome and body; when
--    jwtgate refuses the connection or does not answer within 2 s of it,
--    ends it with 503: nothing passes unjudged.
--
-- HAProxy must not rewrite the path after this action (set-path,
-- replace-path): jwtgate judged the path the client sent.

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

-- Headers a backend may take the request's URL, host or method from:
-- whatever a client sent under these names never reaches it.
local rewrites = {
    ["x-original-url"] = true, ["x-original-uri"] = true,
    ["x-original-method"] = true, ["x-rewrite-url"] = true,
    ["x-forwarded-host"] = true, ["x-forwarded-uri"] = true,
    ["x-forwarded-prefix"] = true, ["x-forwarded-method"] = true,
    ["http2-settings"] = true,
}

-- Headers of jwtgate's 200 that say nothing about the request: a client's
-- headers of these names stay.
local not_identity = {
    ["content-length"] = true, ["content-type"] = true, ["connection"] = true,
    ["keep-alive"] = true, ["date"] = true, ["server"] = true,
    ["cache-control"] = true, ["transfer-encoding"] = true,
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

-- A header name as CGI, WSGI, Rack and PHP applications read it.
local function folded(name)
    return (string.gsub(string.lower(name), "_", "-"))
end

local function split(csv)
    local out = {}
    for name in string.gmatch(csv, "[^,%s]+") do out[#out + 1] = folded(name) end
    return out
end

local function starts(name, prefix)
    return string.sub(name, 1, #prefix) == prefix
end

-- Removes the client's headers whose folded name `matches` accepts.
local function strip(txn, client, matches)
    for name in pairs(client) do
        if matches(folded(name)) then
            txn.http:req_del_header(name)
            client[name] = nil
        end
    end
end

-- Is `target` (the request target as HAProxy forwards it) one the backend
-- reads as the same host and path jwtgate is told? A path, or an http(s)
-- URL whose authority, read to the first "/" as HAProxy does, holds no
-- character that ends an authority or marks user information for other
-- parsers and equals the Host.
local function plain_target(target, host)
    if string.sub(target, 1, 1) == "/" then return true end
    local authority = string.match(string.lower(target), "^https?://([^/]*)")
    return authority ~= nil
        and not string.find(authority, "[?#@\\%%]")
        and authority == string.lower(host)
end

-- Does an Upgrade header ask for h2c?
local function upgrades_to_h2c(list)
    for _, value in ipairs(list) do
        for token in string.gmatch(string.lower(value), "[^,%s]+") do
            if token == "h2c" then return true end
        end
    end
    return false
end

local function refuse(txn, status, body)
    txn:done({
        status = status,
        headers = { ["content-type"] = { "text/plain" }, ["cache-control"] = { "no-store" } },
        body = body,
    })
end

core.register_action("jwtgate-auth", { "http-req" }, function(txn, url, copied_csv)
    local copied = split(copied_csv)
    local is_copied = {}
    for _, name in ipairs(copied) do is_copied[name] = true end
    local client = txn.http:req_get_headers()
    local hosts = values(client["host"])
    if #hosts ~= 1 then
        -- No Host, or several: the backend could read either; refuse.
        refuse(txn, 400, "a request needs exactly one Host header\n")
        return
    end
    if not plain_target(txn.f:url(), hosts[1]) then
        refuse(txn, 400, "the request target must be a path, or a URL of the Host it names\n")
        return
    end
    if upgrades_to_h2c(values(client["upgrade"])) then
        refuse(txn, 400, "h2c upgrades are not accepted\n")
        return
    end
    strip(txn, client, function(name)
        return is_copied[name] or rewrites[name]
            or starts(name, "x-jwt-") or starts(name, "x-jwtgate-")
    end)
    local headers = {}
    for name, list in pairs(client) do
        if not not_forwarded[name] then
            headers[name] = values(list)
        end
    end
    headers["x-forwarded-method"] = { txn.f:method() }
    -- ssl_fc is an integer here, and 0 is true in Lua.
    headers["x-forwarded-proto"] = { (txn.f:ssl_fc() == 1) and "https" or "http" }
    headers["x-forwarded-host"] = { hosts[1] }
    headers["x-forwarded-uri"] = { txn.f:pathq() }

    local ok, answer = pcall(function()
        return core.httpclient():get({ url = url, headers = headers, timeout = 2000 })
    end)
    if not ok or answer == nil or answer.status == nil or answer.status == 0 then
        refuse(txn, 503, "the authorization service did not answer\n")
        return
    end
    local answered = answer.headers or {}
    if #values(answered["x-jwtgate-outcome"]) ~= 1 then
        -- Not jwtgate's answer (a wrong URL reaching another service):
        -- neither its 200 nor its refusal is ours to pass on.
        refuse(txn, 503, "the authorization service's answer is not jwtgate's\n")
        return
    end

    if answer.status == 200 then
        local said = {}
        for name in pairs(answered) do
            local name = folded(name)
            if not not_identity[name] and not starts(name, "x-jwtgate-") then said[name] = true end
        end
        strip(txn, client, function(name) return said[name] end)
        for _, name in ipairs(copied) do
            for _, value in ipairs(values(answered[name])) do
                if value ~= "" then
                    txn.http:req_add_header(name, value)
                end
            end
        end
        txn:set_var("txn.jwtgate_allowed", 1)
        return
    end

    local reply = { status = answer.status, headers = {}, body = answer.body or "" }
    for _, name in ipairs(relayed) do
        local list = values(answered[name])
        if #list > 0 then reply.headers[name] = list end
    end
    txn:done(reply)
end, 2)
