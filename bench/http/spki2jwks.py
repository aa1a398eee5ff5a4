#!/usr/bin/env python3
"""Write the JWKS for a PEM public key (SPKI: RSA or EC P-256), with a kid and alg.

scripts/bench-http.sh uses it so that jwtgate selects the key by kid, as with a real
identity provider's JWKS (PEM keys carry no kid, and a token naming a kid that the
key set lacks is unknown_kid), while HAProxy's jwt_verify reads the same key as PEM.
    spki2jwks.py SPKI_PEM KID ALG > jwks.json
Standard library only: a minimal DER reader for the two SPKI layouts used here.
"""
import base64
import json
import sys

RSA_OID = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1 rsaEncryption
EC_OID = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1 id-ecPublicKey
P256_OID = bytes.fromhex("2a8648ce3d030107")  # 1.2.840.10045.3.1.7 prime256v1


def tlv(buf, pos):
    """(tag, content, next position) of the DER element at pos."""
    tag, length = buf[pos], buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
    return tag, buf[pos:pos + length], pos + length


def children(content):
    out, pos = [], 0
    while pos < len(content):
        tag, value, pos = tlv(content, pos)
        out.append((tag, value))
    return out


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    path, kid, alg = sys.argv[1:4]
    lines = open(path).read().split("\n")
    if "-----BEGIN PUBLIC KEY-----" not in lines:
        sys.exit(f"{path}: not a PEM SPKI public key")
    body = lines[lines.index("-----BEGIN PUBLIC KEY-----") + 1:lines.index("-----END PUBLIC KEY-----")]
    der = base64.b64decode("".join(body))
    _, spki, _ = tlv(der, 0)
    (_, algid), (_, bits) = children(spki)
    ids = children(algid)
    key = bits[1:]  # BIT STRING: first byte is the unused-bit count (0)
    if ids[0][1] == RSA_OID:
        (_, n), (_, e) = children(tlv(key, 0)[1])
        jwk = {"kty": "RSA", "n": b64u(n.lstrip(b"\0")), "e": b64u(e.lstrip(b"\0"))}
    elif ids[0][1] == EC_OID and ids[1][1] == P256_OID and len(key) == 65 and key[0] == 4:
        jwk = {"kty": "EC", "crv": "P-256", "x": b64u(key[1:33]), "y": b64u(key[33:])}
    else:
        sys.exit(f"{path}: only RSA and EC P-256 public keys are supported")
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    json.dump({"keys": [jwk]}, sys.stdout)
    sys.stdout.write("\n")


main()
