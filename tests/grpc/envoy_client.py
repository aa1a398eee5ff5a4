#!/usr/bin/env python3
"""Envoy's side of ext_authz, spoken by a client that shares no code with jwtgate.

jwtgate's own gRPC tests (tests/integration/grpc.rs) build their client from
the crate the server is built on (envoy-types), so a field both read wrongly
the same way would pass them. This client uses Envoy's protos as PyPI ships
them for Python (xds-protos) and gRPC's Python stack (grpcio,
grpcio-health-checking), and builds each CheckRequest the way Envoy's
ext_authz filter fills one for an HTTP request.

Usage:
    envoy_client.py ADDRESS < calls.json   one JSON line per call on stdout
    envoy_client.py --imports-only         exit 0 when the packages import

calls.json:
    {"deadline_seconds": 10,
     "checks": [{"name": "valid", "method": "GET", "host": "api.example.com",
                 "path": "/v1/orders?page=2",
                 "headers": [["authorization", "Bearer ..."]]}],
     "health": [""]}

A check prints {"check": name, "code", "message", "http_response" (which of
ok_response, denied_response, error_response, or null), "denied_status",
"headers", "headers_to_remove", "body", "dynamic_metadata"}; a health call
prints {"health": service, "status"}. A call that fails prints its gRPC error
({"check" or "health", "rpc_error": {"code", "details"}}), the others still
run, and the exit status is 1. Bad input exits 2.

tests/integration/grpc_python.rs runs it; tests/grpc/requirements.txt pins
the packages and scripts/grpc-python-venv.sh installs them.
"""

import json
import sys
import uuid

import grpc
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.service.auth.v3 import (
    attribute_context_pb2,
    external_auth_pb2,
    external_auth_pb2_grpc,
)
from google.protobuf import json_format, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

# What the proxy's side of the connection looks like to the authorization
# server: Envoy states the downstream client and its own listener as peers.
# jwtgate decides on the request alone, so any plausible addresses do.
DOWNSTREAM = ("127.0.0.1", 50312)
LISTENER = ("127.0.0.1", 10000)


def peer(address, port):
    return attribute_context_pb2.AttributeContext.Peer(
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=address, port_value=port)
        )
    )


def check_request(stream_id, method, host, path, headers):
    """A CheckRequest as Envoy's ext_authz filter builds it for an HTTP/1.1
    request: the request headers as the connection manager holds them by then
    (names lowercased, pseudo-headers included, x-request-id and
    x-forwarded-proto added, repeated headers joined with commas) in the
    `headers` map; `path` with its query and `query` left empty; `host` from
    :authority."""
    stated = {
        ":authority": host,
        ":path": path,
        ":method": method,
        ":scheme": "http",
        "x-forwarded-proto": "http",
        "x-request-id": str(uuid.uuid4()),
    }
    for name, value in headers:
        name = name.lower()
        stated[name] = f"{stated[name]},{value}" if name in stated else value
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        id=str(stream_id),
        method=method,
        headers=stated,
        path=path,
        host=host,
        scheme="http",
        protocol="HTTP/1.1",
    )
    return external_auth_pb2.CheckRequest(
        attributes=attribute_context_pb2.AttributeContext(
            source=peer(*DOWNSTREAM),
            destination=peer(*LISTENER),
            request=attribute_context_pb2.AttributeContext.Request(time=now, http=http),
        )
    )


def header_option(option):
    """One HeaderValueOption with everything that decides what Envoy does
    with it: the deprecated `append` (null when unset, as Envoy reads an
    unset one) beside `append_action`, and `keep_empty_value`."""
    return {
        "key": option.header.key,
        "value": option.header.value,
        "raw_value": option.header.raw_value.decode("utf-8", "replace"),
        "append": option.append.value if option.HasField("append") else None,
        "append_action": base_pb2.HeaderValueOption.HeaderAppendAction.Name(
            option.append_action
        ),
        "keep_empty_value": option.keep_empty_value,
    }


def describe(name, response):
    kind = response.WhichOneof("http_response")
    record = {
        "check": name,
        "code": response.status.code,
        "message": response.status.message,
        "http_response": kind,
        "denied_status": None,
        "headers": [],
        "headers_to_remove": [],
        "body": None,
        "dynamic_metadata": (
            json_format.MessageToDict(response.dynamic_metadata)
            if response.HasField("dynamic_metadata")
            else None
        ),
    }
    if kind == "ok_response":
        record["headers"] = [header_option(o) for o in response.ok_response.headers]
        record["headers_to_remove"] = list(response.ok_response.headers_to_remove)
    elif kind == "denied_response":
        denied = response.denied_response
        record["denied_status"] = denied.status.code
        record["headers"] = [header_option(o) for o in denied.headers]
        record["body"] = denied.body
    return record


def rpc_error(error):
    return {"code": error.code().name, "details": error.details()}


def emit(record):
    print(json.dumps(record, sort_keys=True), flush=True)


def main(argv):
    if argv[1:] == ["--imports-only"]:
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        calls = json.load(sys.stdin)
        deadline = float(calls.get("deadline_seconds", 10))
        checks = [
            (c["name"], c["method"], c["host"], c["path"], c.get("headers", []))
            for c in calls.get("checks", [])
        ]
        services = list(calls.get("health", []))
    except (ValueError, KeyError, TypeError) as error:
        print(f"envoy_client.py: unreadable calls on stdin: {error!r}", file=sys.stderr)
        return 2

    failed = False
    # One HTTP/2 connection for every call, as Envoy keeps to its ext_authz
    # cluster; plaintext (h2c), as jwtgate's gRPC face serves.
    with grpc.insecure_channel(argv[1]) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=deadline)
        except grpc.FutureTimeoutError:
            print(f"envoy_client.py: no connection to {argv[1]} within {deadline}s", file=sys.stderr)
            return 1
        authorization = external_auth_pb2_grpc.AuthorizationStub(channel)
        for stream_id, (name, method, host, path, headers) in enumerate(checks, start=1):
            request = check_request(stream_id, method, host, path, headers)
            try:
                emit(describe(name, authorization.Check(request, timeout=deadline)))
            except grpc.RpcError as error:
                failed = True
                emit({"check": name, "rpc_error": rpc_error(error)})
        health = health_pb2_grpc.HealthStub(channel)
        for service in services:
            request = health_pb2.HealthCheckRequest(service=service)
            try:
                response = health.Check(request, timeout=deadline)
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                emit({"health": service, "status": status})
            except grpc.RpcError as error:
                failed = True
                emit({"health": service, "rpc_error": rpc_error(error)})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
