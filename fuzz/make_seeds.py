#!/usr/bin/env python3
"""Writes the committed seed corpora, fuzz/seeds/<target>/, from the public
test vectors (../shared/vectors beside the checkout), the example
configuration and the configurations and requests in the tests. Run from
anywhere; it replaces the seed folders it writes. Seeds stay small: a few
dozen files per target, each well under the target's -max_len."""

import base64
import hashlib
import json
import pathlib
import re
import shutil

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
VECTORS = ROOT.parent / "shared" / "vectors"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write(target: str, seeds) -> None:
    folder = FUZZ / "seeds" / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    unique = {}
    for seed in seeds:
        data = seed.encode() if isinstance(seed, str) else bytes(seed)
        unique[hashlib.sha1(data).hexdigest()[:16]] = data
    for name, data in sorted(unique.items()):
        (folder / name).write_bytes(data)
    print(f"{target}: {len(unique)} seeds, {sum(map(len, unique.values()))} bytes")


def rfc7515_compact(name: str) -> str:
    text = (VECTORS / "rfc7515" / name).read_text()
    return re.search(r'\.compact", <<"([^"]+)"', text).group(1)


def wycheproof(name: str):
    return json.loads((VECTORS / "wycheproof" / name).read_text())


# --- HTTP request heads -------------------------------------------------------
HEADS = [
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /api/x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET",
    "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x.y.z\r\n\r\n",
    "\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    "GET /auth HTTP/1.1\r\nHost: gate\r\nX-Forwarded-Method: DELETE\r\nX-Forwarded-Host: api.example\r\nX-Forwarded-Uri: /v1/x?a=b\r\n\r\n",
    "GET /_auth HTTP/1.0\r\nHost: api.example\r\nX-Forwarded-Uri: /public\r\nX-Original-URI: /orders\r\nX-Original-Method: POST\r\n\r\n",
    "PUT /authz/v1/items/7 HTTP/1.1\r\nHost: api.example\r\n\r\n",
    "GET /authz HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /p HTTP/1.1\r\nHost: h\r\nX-Original-Method: GET\r\nX-Original-URI: /a\r\nX-Original-URI: /admin\r\n\r\n",
    "POST /v1/verify HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nx.y.z",
    "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n",
    "GET http://api.example.com/admin/users?x HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\nOrigin: https://a\r\nAccess-Control-Request-Method: GET\r\n\r\n",
    "GET / HTTP/1.1\nHost: h\n\n",
    "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:9901\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX-Original-Method: GET\r\nX-Original-URI: /v1/public/..;/admin\r\nCookie: a=1; session=x.y.z\r\n\r\n",
]

# --- request targets ----------------------------------------------------------
PATHS = [
    "/", "/v1/users/7?x=1", "/v1/users/", "/v1//users", "/v1/public/../admin",
    "/v1/./admin", "/../../etc", "/v1/..", "/%61dmin", "/a%2Fb", "/a%2fb", "/a%20b",
    "/a\\b", "/bad%zz", "*", "/v1/public/..;/orders", "/v1/public/x/..;/..;/admin",
    "/a;jsessionid=1/b", "/v1/public/..%00/x", "/v1/public/x#/../../orders", "/x#/../y",
    "http://api.example.com/admin/users?x", "HTTPS://api.example.com", "/admin%2Fusers",
    "/admin%5cusers", "/%2e%2e/admin", "/v1/%2E./admin", "/%25%32%65", "/%%32E",
    "/a/b/c/./../../d/", "/caf%C3%A9", "/caf%E9", "/v1/health", "//v1/health",
    "/v1/public/..;jsessionid=1/admin", "/Admin/Users",
]

# --- token sources ------------------------------------------------------------
SOURCES = [
    "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer a.b.c\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: bearer    a.b.c  \r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer\ta.b.c\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: a.b.c\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer a b\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nX-Token: a.b.c\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; session=x.y.z; b=2\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nCookie: session=\"x.y.z\"\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: session=q.r.s\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nCookie: session=a; session=b\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nCookie: sessionx=1; xsession=2\r\n\r\n",
    "GET /?a=1&access_token=x.y.z HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /?access_token=a&access_token=b HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /?access_tokens=1&access_token= HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /p?access_token=q.r.s HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer a.b.c\r\nX-Token: d.e.f\r\nCookie: session=g.h.i\r\n\r\n",
]

# --- tokens -------------------------------------------------------------------
def tokens():
    raw = [rfc7515_compact(f"a.{n}.config") for n in (1, 2, 3, 4)]
    raw.append(rfc7515_compact("a.5.config"))
    raw.append(json.loads((VECTORS / "rfc8037" / "jws.json").read_text())["output"]["compact"])
    for name in sorted((VECTORS / "rfc7520").glob("4_*.json")):
        compact = json.loads(name.read_text()).get("output", {}).get("compact")
        if compact:
            raw.append(compact)
    signature_tests = [t for g in wycheproof("json_web_signature_test.json")["testGroups"] for t in g["tests"]]
    # Every tenth Wycheproof case: a spread of algorithms and attacks, not all 401.
    raw += [t["jws"] for t in signature_tests[::10] if isinstance(t.get("jws"), str)]
    seeds = [b"\x00" + t.encode() for t in raw if len(t) < 4096]
    # Odd first byte: header 0xFF claims, signed by the target with the A.1 secret.
    signed = [
        ('{"typ":"JWT",\r\n "alg":"HS256"}', '{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}'),
        ('{"alg":"HS256","typ":"JWT"}', '{"iss":"joe","aud":"api","sub":"user:1","exp":1300820000,"iat":1300818000,"scope":"read"}'),
        ('{"alg":"HS256","typ":"application/JWT","kid":"k"}', '{"iss":"joe","aud":["x","api"],"sub":"user:\\u0031","exp":1300820000.5,"iat":1300818000,"nbf":1300818000,"scope":["a"],"jti":"1"}'),
        ('{"alg":"HS256","crit":["exp"],"exp":1}', '{"exp":1300820000}'),
        ('{"alg":"HS256","b64":false,"crit":["b64"]}', '{"exp":1300820000}'),
        ('{"alg":"none"}', '{"exp":1300820000}'),
        ('{"alg":"HS256","alg":"HS256"}', '{"exp":1300820000}'),
        ('{"alg":"HS256"}', '{"exp":1e400}'),
        ('{"alg":"HS256"}', '{"exp":1300818000,"nbf":1300830000,"iat":1400000000}'),
        ('{"alg":"HS256","jwk":{"kty":"oct","k":"AA"}}', '{"exp":1300820000,"a":{"b":[1,2,{"c":null}]}}'),
    ]
    for i, (header, claims) in enumerate(signed):
        seeds.append(b"\x01" + header.encode() + b"\xff" + claims.encode())
    seeds.append(b"\x03" + b'{"alg":"HS384"}' + b"\xff" + b'{"exp":1300820000}')
    seeds.append(b"\x05" + b'{"alg":"HS512"}' + b"\xff" + b'{"exp":1300820000}')
    return seeds


# --- JSON documents -----------------------------------------------------------
def json_docs():
    docs = [
        '{"typ":"JWT",\r\n "alg":"HS256"}', '{"alg":"RS256","kid":"rsa-a","typ":"JWT"}',
        '{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}',
        '{"alg":"none"}', '{"alg":"HS256","\\u0061lg":"HS256"}', '{"a":"\\ud83d\\ude00"}',
        '{"a":"\\ud83d"}', '{"a":"\\udc00x"}', '"\\u0000"', '[1,-0,0.5,1e400,-1E-400,12345678901234567890]',
        '[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]', '{"a":{"b":{"c":[true,false,null]}}}', '\ufeff{}',
        ' {"x" : [ ] , "y" : { } } ', '{"k":"tab\tinside"}', '{"k":"\\/\\b\\f\\n\\r\\t\\"\\\\"}', '1 2',
        '{' + ",".join(f'"k{i}":{i}' for i in range(20)) + ',"k3":0}',
        '{' + ",".join(f'"k{i}":{i}' for i in range(40)) + '}', 'tru', '-', '01', '1.', '.5',
        '{"é":"ü","日本":"語"}',
    ]
    docs.append((ROOT / "examples" / "keys" / "demo.jwks.json").read_text())
    docs.append((VECTORS / "rfc7515" / "a.2.1.jwk+json").read_text())
    return [bytes([16]) + d.encode() for d in docs] + [bytes([1]) + b"[[1]]", bytes([64]) + b"[" * 70 + b"]" * 70]


# --- key sets -----------------------------------------------------------------
def key_docs():
    docs = [(VECTORS / "rfc7515" / f"a.{n}.1.jwk+json").read_text() for n in (1, 2, 3, 4)]
    docs += [(FUZZ / "keys" / name).read_text() for name in ("public.jwks.json", "demo.jwks.json", "hs.jwks.json")]
    docs.append(json.dumps(json.loads((VECTORS / "rfc8037" / "jws.json").read_text())["input"]["key"]))
    for name in ("p256.spki.pem", "p384.spki.pem", "ed25519.spki.pem", "rsa1024.spki.pem", "rsa1024.pkcs1.pem", "rsa2048-a.spki.pem", "rsa2048-a.pkcs1.pem"):
        docs.append((ROOT / "tests" / "data" / name).read_text())
    docs.append((ROOT / "tests" / "data" / "p256.spki.pem").read_text() + (ROOT / "tests" / "data" / "ed25519.spki.pem").read_text())
    docs.append((ROOT / "tests" / "data" / "p256.pk8.pem").read_text())
    for group in wycheproof("json_web_key_test.json")["testGroups"]:
        for key in ("private", "public"):
            if isinstance(group.get(key), dict):
                docs.append(json.dumps(group[key]))
    docs += ['{"keys":[]}', '{"keys":[{"kty":"oct","k":"AA"}]}', '{"keys":[{"kty":"EC","crv":"P-521"}]}',
             '{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}']
    return docs


# --- configurations -----------------------------------------------------------
def configs():
    out = []
    example = (ROOT / "examples" / "config" / "jwtgate.toml").read_text()
    out.append(example.replace("../keys/demo.jwks.json", "demo.jwks.json"))
    texts = []
    for name in ("tests/integration/config.rs", "src/config/tests.rs"):
        texts += re.findall(r'r#"(.*?)"#', (ROOT / name).read_text(), re.S)
    fragments = [t for t in texts if "[[" in t or "default_action" in t or "[server]" in t]
    token_configs = next((t for t in fragments if 'name = "users"' in t), "")
    for fragment in fragments:
        text = fragment.replace("@JWKS@", 'jwks_file = "demo.jwks.json"').replace("keys.jwks.json", "demo.jwks.json")
        if "default_action" not in text:
            text = 'default_action = "deny"\n[server]\nforwarded = "x-original"\n' + token_configs.replace("keys.jwks.json", "demo.jwks.json") + text
        if "{" + "{" in text:  # a format! template, not a configuration
            continue
        out.append(text)
    out += [
        'default_action = "allow"\n[server]\nforwarded = "request-line"\npath_prefix = "/authz"\n'
        '[[token_config]]\nname = "hs"\njwks_file = "hs.jwks.json"\nalgorithms = ["HS256"]\n'
        '[[rule]]\nname = "r"\npaths = ["/v1/{id}/**"]\ntoken_configs = ["hs"]\n',
        'default_action = "deny"\n[server]\nforwarded = "x-forwarded"\ntrusted_proxies = ["10.0.0.0/8", "::1"]\n'
        '[[token_config]]\nname = "pem"\npublic_key_file = "rsa.spki.pem"\nalgorithms = ["RS256"]\n',
        'default_action = "deny"\n[[token_config]]\nname = "remote"\njwks_url = "https://idp.example/jwks"\n'
        'ca_file = "p256.spki.pem"\nrefresh_interval = "5m"\n',
        'default_action = "deny"\n[[token_config]]\nname = "oidc"\nissuer = "https://idp.example"\nissuer_discovery = true\n',
        'default_action = "deny"\n[[token_config]]\nname = "p"\njwks_file = "public.jwks.json"\n'
        'require = ["exp", "sub", "scope"]\nsubject = { prefix = "user:" }\n[[rule]]\nname = "a"\n'
        'token_configs = ["p"]\nrequire_claims = [ { claim = "scope", contains = "admin" } ]\n'
        'forward_claims = { sub = "x-sub" }\nexclude = ["GET /v1/health", "/v1/public/**"]\n',
        "default_action = 'deny'\n[server]\nlisten = '[::1]:0'\nshards = 2\nio = 'epoll'\naccess_log = 'stdout'\n",
        "default_action = 1\n", "[server\n", "x = \"\\u00e9\n",
    ]
    return [c for c in out if len(c) < 8192][:40]


def revocations():
    """Revocation files: a form byte (even: JSON lines, odd: TOML), then the text."""
    lines = [
        '{"jti":"3f2a9c","iss":"https://idp.example.com/","expires":1767225600}',
        '{"sub":"alice","iss":"https://idp.example.com/","before":1767200000,"expires":1767229200}',
        '{"kid":"2024-07","token_config":"users","expires":1767232800}',
        '{"\\u006ati":"a\\"b\\u00e9","iss":"i","expires":253402300799}',
        '{"jti":"a","iss":"i","expires":1.5}', '{"jti":"a","sub":"b","iss":"i","expires":1}',
        '{"kid":"k","iss":"i","expires":1}', '[1]',
    ]
    out = [b"\x00" + "\n".join(lines[:3]).encode(), b"\x00# comment\n\n" + lines[3].encode() + b"\n"]
    out += [b"\x00" + line.encode() for line in lines[4:]]
    tomls = [
        '[[revoked]]\njti = "3f2a"\niss = "https://idp.example.com/"\nexpires = 2027-01-01T00:00:00Z\n',
        '[[revoked]]\nsub = "alice"\niss = "https://idp/"\nbefore = 2026-12-07T11:00:00+01:00\nexpires = 1798761600\n'
        '\n[[revoked]]\nkid = "2024-07"\ntoken_config = "users"\nexpires = 1798761600\n',
        '[[revoked]]\njti = "b"\niss = "i"\nexpires = 2027-01-01T00:00:00\n',
        '[[revoked]]\njti = 7\niss = "i"\nexpires = 2027-02-30T00:00:00Z\n',
        'revoked = []\n[[revoked]]\njti = "x"\n', '[[revoke]]\n',
    ]
    out += [b"\x01" + t.encode() for t in tomls]
    return out


# --- incremental parsing: a read count and read lengths, then the bytes -------
def split_prefix(i: int) -> bytes:
    reads = i % 5
    return bytes([reads]) + bytes((7 * i + 3 * k) % 40 for k in range(reads + 1))


CHUNKED = [
    "5\r\nhello\r\n0\r\n\r\n",
    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
    "3;name=value;x\r\nabc\r\n0\r\nTrailer: t\r\nX-Other: y\r\n\r\n",
    "A\r\n0123456789\r\n0000\r\n\r\n",
    "ffffffffffffffff\r\n", "10000000000000000\r\n", "5\nhello\n0\n\n",
    "5\r\nhelloX\r\n0\r\n\r\n", "0\r\n folded: no\r\n\r\n", "0\r\nnocolon\r\n\r\n",
    "-1\r\n", " 5\r\nhello\r\n0\r\n\r\n", "5 \r\nhello\r\n0\r\n\r\n", "0;\x01\r\n\r\n",
    "1\r\na\r\n" * 8 + "0\r\n\r\n",
]
CHUNK_LIMITS = [255, 1, 0, 4, 255, 2, 255, 255, 255, 255, 255, 255, 255, 255, 255]

# --- gRPC CheckRequests -----------------------------------------------------------
def pb_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_field(number: int, payload) -> bytes:
    """A length-delimited field (strings, bytes, messages, map entries)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return pb_varint(number << 3 | 2) + pb_varint(len(data)) + data


def pb_map(number: int, pairs) -> bytes:
    return b"".join(pb_field(number, pb_field(1, k) + pb_field(2, v)) for k, v in pairs)


def check_request(method, path, headers=(), raw_headers=None, extensions=(), query="", host="api.example"):
    """envoy.service.auth.v3.CheckRequest: attributes(1) → request(4) → http(2)."""
    http = pb_field(2, method) + pb_map(3, headers) + pb_field(4, path) + pb_field(5, host)
    if query:
        http += pb_field(7, query)
    if raw_headers is not None:
        entries = b"".join(pb_field(1, pb_field(1, k) + pb_field(3, v)) for k, v in raw_headers)
        http += pb_field(13, entries)
    attributes = pb_field(4, pb_field(2, http)) + pb_map(10, extensions)
    return pb_field(1, attributes)


def grpc_requests():
    import hmac
    secret = base64.urlsafe_b64decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow==")
    signing_input = b64(b'{"alg":"HS256"}') + "." + b64(b'{"iss":"joe","exp":1300820000,"scope":"read admin"}')
    token = signing_input + "." + b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    bearer = [("authorization", "Bearer " + token)]
    return [
        check_request("GET", "/api/orders?page=2", bearer),
        check_request("POST", "/admin/users", bearer),
        check_request("GET", "/api/health"),
        check_request("GET", "/api/./health"),
        check_request("GET", "/api/orders"),
        check_request("GET", "/api/orders", raw_headers=bearer + [("x-other", "1")]),
        check_request("GET", "/api/orders", bearer, extensions=[("jwtgate_rule", "admin")]),
        check_request("GET", "/api/orders", bearer, extensions=[("jwtgate_rule", "nope")]),
        check_request("GET", "/api/orders", bearer, raw_headers=bearer),
        check_request("GET", "/api/orders", bearer, query="page=2"),
        check_request("GET", "/api/orders", [("authorization", "Basic dXNlcjpwYXNz,Bearer " + token)]),
        check_request("GET", "/api/orders", [("cookie", "a=1; b=2"), ("x-http-method-override", "DELETE")]),
        check_request("OPTIONS", "/api/orders", [("origin", "https://a.example"), ("access-control-request-method", "GET")]),
        check_request("GET", "/api/orders", bearer, host="bad host"),
        b"", b"\x0a\x00", b"\xff\xff\xff\xff",
    ]


write("request_head", HEADS)
write("canonical_path", PATHS)
write("token_sources", SOURCES)
write("verify_token", tokens())
write("json_tape", json_docs())
write("jwks_keyset", key_docs())
write("config_toml", configs())
write("revocation_file", revocations())
write("head_scan", [split_prefix(i) + h.encode() for i, h in enumerate(HEADS + SOURCES[:4])])
write("grpc_check", grpc_requests())
write("chunked_body", [bytes([CHUNK_LIMITS[i]]) + split_prefix(i) + c.encode() for i, c in enumerate(CHUNKED)])
