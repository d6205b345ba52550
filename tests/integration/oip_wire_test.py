#!/usr/bin/env python3
"""Berth's Open Inference Protocol protos (proto/inference/) are wire-compatible with upstream's:
every message, field, enum value and method Berth declares exists in the definitions
tritonclient ships (tritonclient.grpc.service_pb2 and model_config_pb2, package inference) with
the same full name, number, type, label and oneof, and each method takes and returns the same
messages. Berth may declare less than upstream (fields it never sets), never something else.

usage: oip_wire_test.py PROTOC PROTO_DIR   (run with .venv-clients/bin/python)
"""
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2
from tritonclient.grpc import model_config_pb2, service_pb2

from checks import check, failures


def upstream_messages():
    """Full name -> upstream descriptor, for every message and enum (nested ones included)."""
    out = {}

    def walk(d):
        out[d.full_name] = d
        for n in d.nested_types:
            walk(n)
        for e in d.enum_types:
            out[e.full_name] = e
    for f in (service_pb2.DESCRIPTOR, model_config_pb2.DESCRIPTOR):
        for m in f.message_types_by_name.values():
            walk(m)
        for e in f.enum_types_by_name.values():
            out[e.full_name] = e
    return out


def main():
    protoc, proto_dir = sys.argv[1:3]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        subprocess.run([protoc, "--proto_path=" + proto_dir, "--include_imports",
                        "--descriptor_set_out=" + out, "inference/grpc_service.proto"], check=True)
        fds = descriptor_pb2.FileDescriptorSet.FromString(open(out, "rb").read())
    upstream = upstream_messages()
    ours = [f for f in fds.file if f.package == "inference"]
    check(len(ours) == 2, "both of Berth's inference protos compile: %s" % [f.name for f in ours])
    compared = 0

    def compare_message(m, prefix):
        nonlocal compared
        name = prefix + "." + m.name
        up = upstream.get(name)
        if up is None or not hasattr(up, "fields_by_number"):
            check(False, "%s is an upstream message" % name)
            return
        for f in m.field:
            u = up.fields_by_number.get(f.number)
            same = (u is not None and u.name == f.name and u.type == f.type and u.label == f.label and
                    (not f.type_name or (u.message_type or u.enum_type).full_name == f.type_name[1:]) and
                    ((u.containing_oneof.name if u.containing_oneof else None) ==
                     (m.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else None)))
            check(same, "%s.%s = %d matches upstream" % (name, f.name, f.number))
            compared += 1
        for n in m.nested_type:
            if not n.options.map_entry:
                compare_message(n, name)
        for e in m.enum_type:
            compare_enum(e, name)

    def compare_enum(e, prefix):
        nonlocal compared
        name = prefix + "." + e.name
        up = upstream.get(name)
        for v in e.value:
            u = up.values_by_name.get(v.name) if up is not None else None
            check(u is not None and u.number == v.number, "%s.%s = %d matches upstream" % (name, v.name, v.number))
            compared += 1

    for f in ours:
        for m in f.message_type:
            compare_message(m, "inference")
        for e in f.enum_type:
            compare_enum(e, "inference")
    service = [s for f in ours for s in f.service]
    up_service = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    check(len(service) == 1 and service[0].name == "GRPCInferenceService", "one service, GRPCInferenceService")
    for method in service[0].method:
        u = up_service.methods_by_name.get(method.name)
        check(u is not None and u.input_type.full_name == method.input_type[1:] and
              u.output_type.full_name == method.output_type[1:] and
              not method.client_streaming and not method.server_streaming,
              "rpc %s(%s) returns (%s) matches upstream" % (method.name, method.input_type, method.output_type))
    check(compared > 100, "every declared field and value compared (%d)" % compared)
    print("oip wire: all checks passed" if not failures else "oip wire: %d checks failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
