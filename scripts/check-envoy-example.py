#!/usr/bin/env python3
"""Checks Envoy configurations (static bootstraps, v3) against Envoy's API.

    python3 scripts/check-envoy-example.py [FILE.yaml ...]
    (default: examples/envoy/envoy-grpc-ext-authz.yaml)

Each file is parsed into envoy.config.bootstrap.v3.Bootstrap, strictly: an
unknown field, a wrong type, an enum name Envoy lacks or a typed_config whose
"@type" is not known fails, inside every typed_config and
typed_per_filter_config too. The API is the .proto files of the envoy-types
crate jwtgate is built with (found with `cargo metadata`), compiled by
grpcio-tools. Not checked: Envoy's value constraints (protoc-gen-validate
rules) and what only a running Envoy decides.

Needs `pip install grpcio-tools pyyaml`; not part of scripts/test.sh.
"""

import json
import os
import subprocess
import sys
import tempfile

try:
    import yaml
    from grpc_tools import protoc
    from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
except ImportError as error:
    sys.exit(f"check-envoy-example: {error}: pip install grpcio-tools pyyaml")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = [os.path.join(ROOT, "examples/envoy/envoy-grpc-ext-authz.yaml")]
# The bootstrap, and every extension the examples name in a typed_config.
PROTOS = [
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
]


def envoy_types_protos():
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
    )
    for package in metadata["packages"]:
        if package["name"] == "envoy-types":
            return os.path.join(os.path.dirname(package["manifest_path"]), "proto")
    sys.exit("check-envoy-example: envoy-types is not a dependency")


def bootstrap_class():
    protos = envoy_types_protos()
    includes = [os.path.join(protos, d) for d in sorted(os.listdir(protos))]
    includes.append(os.path.join(protos, "cel-spec", "proto"))
    includes.append(os.path.join(os.path.dirname(protoc.__file__), "_proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "envoy.pb")
        args = ["protoc", "--include_imports", f"--descriptor_set_out={out}"]
        args += [f"-I{d}" for d in includes if os.path.isdir(d)] + PROTOS
        if protoc.main(args) != 0:
            sys.exit("check-envoy-example: protoc failed on the envoy-types protos")
        files = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            files.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    name = "envoy.config.bootstrap.v3.Bootstrap"
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name)), pool


def main():
    bootstrap, pool = bootstrap_class()
    failed = False
    for path in sys.argv[1:] or DEFAULT:
        with open(path) as f:
            document = yaml.safe_load(f)
        try:
            json_format.ParseDict(document, bootstrap(), descriptor_pool=pool)
            print(f"{path}: valid")
        except json_format.ParseError as error:
            print(f"{path}: {error}", file=sys.stderr)
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
