#!/usr/bin/env bash
# Regenerates the committed key material: RSA/EC/Ed25519 private keys (PKCS#8 PEM)
# for tests and the demo, and the matching public JWKS. Needs openssl and python3.
# The committed files are what the tests expect; rerun only to rotate them all.
set -euo pipefail
cd "$(dirname "$0")/.."

jwk_from_pem() { # $1 = private key PEM, $2 = kid, $3 = alg
  python3 - "$1" "$2" "$3" <<'PY'
import base64, json, subprocess, sys
path, kid, alg = sys.argv[1:]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"],
                     check=True, capture_output=True).stdout
if alg.startswith(("RS", "PS")):
    text = subprocess.run(["openssl", "rsa", "-in", path, "-noout", "-modulus"],
                          check=True, capture_output=True, text=True).stdout
    n = bytes.fromhex(text.strip().split("=", 1)[1])
    jwk = {"kty": "RSA", "n": b64(n), "e": "AQAB"}
elif alg == "EdDSA":
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(der[-32:])}
else:
    size = {"ES256": 32, "ES384": 48}[alg]
    point = der[-(2 * size + 1):]
    assert point[0] == 4
    jwk = {"kty": "EC", "crv": {"ES256": "P-256", "ES384": "P-384"}[alg],
           "x": b64(point[1:1 + size]), "y": b64(point[1 + size:])}
jwk.update({"kid": kid, "alg": alg, "use": "sig"})
print(json.dumps(jwk))
PY
}

gen() { # $1 = output PEM, $2 = openssl genpkey arguments
  openssl genpkey $2 -out "$1" 2>/dev/null
}

gen tests/data/rsa2048-a.pk8.pem "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"
gen tests/data/rsa2048-b.pk8.pem "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"
gen tests/data/rsa3072.pk8.pem "-algorithm RSA -pkeyopt rsa_keygen_bits:3072"
gen tests/data/rsa1024.pk8.pem "-algorithm RSA -pkeyopt rsa_keygen_bits:1024"
for name in rsa2048-a rsa2048-b rsa3072 rsa1024; do
  openssl pkey -in tests/data/$name.pk8.pem -pubout -out tests/data/$name.spki.pem
  openssl rsa -in tests/data/$name.pk8.pem -RSAPublicKey_out -out tests/data/$name.pkcs1.pem 2>/dev/null
done
gen tests/data/p256.pk8.pem "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"
gen tests/data/p384.pk8.pem "-algorithm EC -pkeyopt ec_paramgen_curve:P-384"
gen tests/data/ed25519.pk8.pem "-algorithm ed25519"
for name in p256 p384 ed25519; do
  openssl pkey -in tests/data/$name.pk8.pem -pubout -out tests/data/$name.spki.pem
done

gen examples/keys/demo-rs256.pk8.pem "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"
gen examples/keys/demo-es256.pk8.pem "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"
gen examples/keys/demo-eddsa.pk8.pem "-algorithm ed25519"
{
  echo '{"keys":['
  jwk_from_pem examples/keys/demo-rs256.pk8.pem demo-rs256 RS256; echo ','
  jwk_from_pem examples/keys/demo-es256.pk8.pem demo-es256 ES256; echo ','
  jwk_from_pem examples/keys/demo-eddsa.pk8.pem demo-eddsa EdDSA
  echo ']}'
} | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), indent=2))' > examples/keys/demo.jwks.json
echo "regenerated tests/data and examples/keys"
