#!/usr/bin/env python3
"""A schema-only hashicorp/google provider, so `terraform validate` and `terraform plan` run
offline against the provider's published schema (decision 0033).

Terraform starts it like any provider (go-plugin: magic cookie, protocol 6 over gRPC, automatic
mutual TLS) from a local plugin directory (infra/offline/plugin_dir.py lays one out). It
answers GetProviderSchema with google-schema.json (the 6.50 schema of the types infra/ uses,
extracted from the npm package @cdktf/provider-google by extract_schema.py), so Terraform
itself checks every argument, block, type and required argument of every resource and data
source. It plans a create by echoing the configuration, with every computed attribute that the
configuration leaves null unknown; it reads a data source by echoing its configuration with
computed attributes set to empty values of their type. It cannot apply anything.

The gRPC stubs (tfplugin6_pb2*.py) are generated from tfplugin6.proto, protocol 6.8 as
published in Terraform v1.11.4 (docs/plugin-protocol/tfplugin6.8.proto), with
grpcio-tools 1.76.0: `python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=.
tfplugin6.proto`.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import sys
from concurrent import futures
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import grpc  # noqa: E402
import msgpack  # noqa: E402
import tfplugin6_pb2 as pb  # noqa: E402
import tfplugin6_pb2_grpc as pb_grpc  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
PROVIDER = "registry.terraform.io/hashicorp/google"
SCHEMA_FILE = Path(os.environ.get("SCHEMA_PROVIDER_SCHEMA", HERE / "google-schema.json"))
UNKNOWN = msgpack.ExtType(0, b"\x00")
NESTING = {
    "single": pb.Schema.NestedBlock.SINGLE,
    "list": pb.Schema.NestedBlock.LIST,
    "set": pb.Schema.NestedBlock.SET,
    "map": pb.Schema.NestedBlock.MAP,
    "group": pb.Schema.NestedBlock.GROUP,
}


# --- schema ----------------------------------------------------------------------------------


def block_proto(block: dict[str, Any]) -> pb.Schema.Block:
    return pb.Schema.Block(
        attributes=[
            pb.Schema.Attribute(
                name=name,
                type=json.dumps(a["type"]).encode(),
                required=a.get("required", False),
                optional=a.get("optional", False),
                computed=a.get("computed", False),
                sensitive=a.get("sensitive", False),
                deprecated=a.get("deprecated", False),
            )
            for name, a in sorted(block.get("attributes", {}).items())
        ],
        block_types=[
            pb.Schema.NestedBlock(
                type_name=name,
                block=block_proto(b["block"]),
                nesting=NESTING[b["nesting_mode"]],
                min_items=b.get("min_items", 0),
                max_items=b.get("max_items", 0),
            )
            for name, b in sorted(block.get("block_types", {}).items())
        ],
        deprecated=block.get("deprecated", False),
    )


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())["provider_schemas"][PROVIDER]


# --- values (msgpack, cty's wire format: unknown is extension 0, refined unknown 12) ---------


def decode(value: pb.DynamicValue) -> Any:
    if value.msgpack:
        return msgpack.unpackb(value.msgpack, raw=False, strict_map_key=False)
    if value.json:
        return json.loads(value.json)
    return None


def encode(value: Any) -> pb.DynamicValue:
    return pb.DynamicValue(msgpack=msgpack.packb(value, use_bin_type=True))


def is_unknown(value: Any) -> bool:
    return isinstance(value, msgpack.ExtType)


def empty(ty: Any) -> Any:
    if ty == "string":
        return ""
    if ty == "number":
        return 0
    if ty == "bool":
        return False
    if isinstance(ty, list) and ty[0] in ("list", "set", "tuple"):
        return []
    if isinstance(ty, list) and ty[0] == "map":
        return {}
    if isinstance(ty, list) and ty[0] == "object":
        return {k: empty(t) for k, t in ty[1].items()}
    return None


def fill(block: dict[str, Any], value: Any, computed: Any) -> Any:
    """`value` (an object of `block`) with each null computed attribute set by `computed`."""
    if value is None or is_unknown(value):
        return value
    out = dict(value)
    for name, attr in block.get("attributes", {}).items():
        if out.get(name) is None and attr.get("computed") and attr["type"] != "dynamic":
            out[name] = computed(attr["type"])
    for name, nested in block.get("block_types", {}).items():
        inner = out.get(name)
        if inner is None or is_unknown(inner):
            continue
        if nested["nesting_mode"] in ("single", "group"):
            out[name] = fill(nested["block"], inner, computed)
        elif nested["nesting_mode"] == "map":
            out[name] = {k: fill(nested["block"], v, computed) for k, v in inner.items()}
        else:
            out[name] = [fill(nested["block"], v, computed) for v in inner]
    return out


# --- the provider service --------------------------------------------------------------------


class SchemaOnlyProvider(pb_grpc.ProviderServicer):
    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.resources = schema["resource_schemas"]
        self.data_sources = schema["data_source_schemas"]

    def _unsupported(self, kind: str, type_name: str) -> list[pb.Diagnostic]:
        return [
            pb.Diagnostic(
                severity=pb.Diagnostic.ERROR,
                summary=f"{kind} {type_name} is not in the offline schema",
                detail="infra/offline/extract_schema.py adds it from the pinned provider schema.",
            )
        ]

    def GetMetadata(self, request, context):  # noqa: N802 (gRPC method names)
        return pb.GetMetadata.Response(
            server_capabilities=pb.ServerCapabilities(),
            resources=[pb.GetMetadata.ResourceMetadata(type_name=t) for t in self.resources],
            data_sources=[
                pb.GetMetadata.DataSourceMetadata(type_name=t) for t in self.data_sources
            ],
        )

    def GetProviderSchema(self, request, context):  # noqa: N802
        return pb.GetProviderSchema.Response(
            provider=pb.Schema(version=0, block=block_proto(self.schema["provider"]["block"])),
            resource_schemas={
                t: pb.Schema(version=s.get("version", 0), block=block_proto(s["block"]))
                for t, s in self.resources.items()
            },
            data_source_schemas={
                t: pb.Schema(version=s.get("version", 0), block=block_proto(s["block"]))
                for t, s in self.data_sources.items()
            },
            server_capabilities=pb.ServerCapabilities(),
        )

    def ValidateProviderConfig(self, request, context):  # noqa: N802
        return pb.ValidateProviderConfig.Response()

    def ValidateResourceConfig(self, request, context):  # noqa: N802
        if request.type_name not in self.resources:
            return pb.ValidateResourceConfig.Response(
                diagnostics=self._unsupported("resource", request.type_name)
            )
        return pb.ValidateResourceConfig.Response()

    def ValidateDataResourceConfig(self, request, context):  # noqa: N802
        if request.type_name not in self.data_sources:
            return pb.ValidateDataResourceConfig.Response(
                diagnostics=self._unsupported("data source", request.type_name)
            )
        return pb.ValidateDataResourceConfig.Response()

    def UpgradeResourceState(self, request, context):  # noqa: N802
        state = json.loads(request.raw_state.json) if request.raw_state.json else None
        return pb.UpgradeResourceState.Response(upgraded_state=encode(state))

    def ConfigureProvider(self, request, context):  # noqa: N802
        return pb.ConfigureProvider.Response()

    def ReadResource(self, request, context):  # noqa: N802
        return pb.ReadResource.Response(new_state=request.current_state, private=request.private)

    def PlanResourceChange(self, request, context):  # noqa: N802
        schema = self.resources.get(request.type_name)
        if schema is None:
            return pb.PlanResourceChange.Response(
                diagnostics=self._unsupported("resource", request.type_name)
            )
        proposed = decode(request.proposed_new_state)
        prior = decode(request.prior_state)
        if proposed is None:  # destroy
            return pb.PlanResourceChange.Response(planned_state=request.proposed_new_state)
        if prior is None:  # create: what the provider computes is unknown until apply
            planned = fill(schema["block"], proposed, lambda _ty: UNKNOWN)
        else:
            planned = proposed
        return pb.PlanResourceChange.Response(planned_state=encode(planned))

    def ApplyResourceChange(self, request, context):  # noqa: N802
        return pb.ApplyResourceChange.Response(
            diagnostics=[
                pb.Diagnostic(
                    severity=pb.Diagnostic.ERROR,
                    summary="the offline schema provider cannot apply",
                    detail="It validates and plans; apply with the real hashicorp/google provider.",
                )
            ]
        )

    def ReadDataSource(self, request, context):  # noqa: N802
        schema = self.data_sources.get(request.type_name)
        if schema is None:
            return pb.ReadDataSource.Response(
                diagnostics=self._unsupported("data source", request.type_name)
            )
        state = fill(schema["block"], decode(request.config), empty)
        return pb.ReadDataSource.Response(state=encode(state))

    def GetFunctions(self, request, context):  # noqa: N802
        return pb.GetFunctions.Response()

    def StopProvider(self, request, context):  # noqa: N802
        return pb.StopProvider.Response()


# --- go-plugin: handshake, mutual TLS, controller --------------------------------------------


def server_certificate() -> tuple[bytes, bytes, bytes]:
    """A self-signed certificate for localhost, as go-plugin's AutoMTLS makes: (PEM key, PEM
    cert, DER cert)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return (
        key_pem,
        cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.DER),
    )


def main() -> int:
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE:
        print(
            "This is a Terraform provider plugin: Terraform starts it (infra/offline).",
            file=sys.stderr,
        )
        return 1
    versions = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "6").split(",")
    if "6" not in versions:
        print(f"schema provider: protocol 6 only, Terraform offers {versions}", file=sys.stderr)
        return 1

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_ProviderServicer_to_server(SchemaOnlyProvider(load_schema()), server)

    def shutdown(_request: bytes, _context: grpc.ServicerContext) -> bytes:
        server.stop(grace=0.5)
        return b""  # google.protobuf.Empty

    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "plugin.GRPCController",
                {
                    "Shutdown": grpc.unary_unary_rpc_method_handler(
                        shutdown,
                        request_deserializer=lambda b: b,
                        response_serializer=lambda b: b,
                    )
                },
            )
        ]
    )

    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "")
    cert_field = ""
    if client_cert:
        key_pem, cert_pem, cert_der = server_certificate()
        credentials = grpc.ssl_server_credentials(
            [(key_pem, cert_pem)],
            root_certificates=client_cert.encode(),
            require_client_auth=False,
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
        cert_field = base64.b64encode(cert_der).decode().rstrip("=")
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # core protocol | app protocol | network | address | protocol | server certificate
    sys.stdout.write(f"1|6|tcp|127.0.0.1:{port}|grpc|{cert_field}\n")
    sys.stdout.flush()
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
