#!/usr/bin/env python3
"""Generates streams-group/src/messages.rs, the codec of the KIP-1071 streams-group requests, from
the JSON message schemas shipped in the kafka-clients jar (common/message/*.json), on top of the
`kafka-protocol` crate's primitive encoders.

    scripts/gen-streams-group-messages.py [--jar PATH] [--out PATH | --stdout]

The jar defaults to the one scripts/kafka.sh downloads ($FRESHET_CACHE/kafka-$KAFKA_VERSION/libs).
streams-group/tests/generated.rs runs this with --stdout and fails if the checked-in file differs.
Only flexible versions (compact encodings, tagged-field sections) are supported: every message
generated here is flexible from version 0; a schema that is not fails with an error saying so.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import zipfile

MESSAGES = [
    "StreamsGroupHeartbeatRequest",
    "StreamsGroupHeartbeatResponse",
    "StreamsGroupDescribeRequest",
    "StreamsGroupDescribeResponse",
]

PRIMS = {
    "bool": ("bool", "types::Boolean", "false"),
    "int8": ("i8", "types::Int8", "0"),
    "int16": ("i16", "types::Int16", "0"),
    "uint16": ("u16", "types::UInt16", "0"),
    "int32": ("i32", "types::Int32", "0"),
    "int64": ("i64", "types::Int64", "0"),
}


def default_jar():
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        ["bash", "-c", f"source {here}/lib.sh >/dev/null 2>&1; echo $KAFKA_HOME"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()
    libs = os.path.join(out, "libs")
    if os.path.isdir(libs):
        for f in sorted(os.listdir(libs)):
            if re.fullmatch(r"kafka-clients-[0-9.]+\.jar", f):
                return os.path.join(libs, f)
    sys.exit(f"no kafka-clients jar under {libs}: run `scripts/kafka.sh tool --version` (or make kafka-up) "
             "once to download Kafka, or pass --jar PATH")


def load(jar, name):
    with zipfile.ZipFile(jar) as z:
        text = z.read(f"common/message/{name}.json").decode()
    # The schemas carry // comments (the licence header), which JSON does not allow.
    text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
    return json.loads(text)


def vrange(spec):
    """(min, max) of a version spec: "0+", "1", "0-3"; max None = open."""
    if spec is None or spec == "none":
        return None
    if spec.endswith("+"):
        return (int(spec[:-1]), None)
    if "-" in spec:
        a, b = spec.split("-")
        return (int(a), int(b))
    return (int(spec), int(spec))


def cond(spec, valid):
    """A Rust condition on `version` for a field present in `spec`, or None if always present."""
    lo, hi = vrange(spec)
    vlo, vhi = valid
    parts = []
    if lo > vlo:
        parts.append(f"version >= {lo}")
    if hi is not None and hi < vhi:
        parts.append(f"version <= {hi}")
    return " && ".join(parts) or None


def snake(name):
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    s = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", s)
    return s.lower()


class Gen:
    def __init__(self, schema):
        self.schema = schema
        self.valid = vrange(schema["validVersions"])
        flex = vrange(schema.get("flexibleVersions", "none"))
        if flex is None or flex[0] > self.valid[0]:
            sys.exit(f"{schema['name']}: only messages flexible in every valid version are supported "
                     "(extend the generator with non-compact encodings)")
        self.structs = []  # (name, fields, about)
        self.common = {s["name"]: s for s in schema.get("commonStructs", [])}
        self.emitted = set()

    def field_type(self, f):
        """(rust type, encoder expression, default expression) of a field."""
        t = f["type"]
        nullable = "nullableVersions" in f
        if "taggedVersions" in f:
            sys.exit(f"{self.schema['name']}.{f['name']}: tagged fields are not supported by the generator")
        if t.startswith("[]"):
            inner = t[2:]
            if inner in PRIMS:
                rt, enc, _ = PRIMS[inner]
                enc = f"types::CompactArray({enc})"
            elif inner == "string":
                rt, enc = "StrBytes", "types::CompactArray(types::CompactString)"
            else:
                self.struct_of(inner, f.get("fields"))
                rt, enc = inner, "types::CompactArray(types::Struct { version })"
            rt = f"Vec<{rt}>"
            if nullable:
                return f"Option<{rt}>", enc, "None" if f.get("default") in (None, "null") else "Some(Vec::new())"
            return rt, enc, "Vec::new()"
        if t in PRIMS:
            rt, enc, d = PRIMS[t]
            dv = f.get("default")
            if dv is not None:
                d = str(dv).lower() if t == "bool" else str(dv)
            return rt, enc, d
        if t == "string":
            if nullable:
                return "Option<StrBytes>", "types::CompactString", "None"
            return "StrBytes", "types::CompactString", "StrBytes::default()"
        self.struct_of(t, f.get("fields"))
        if nullable:
            return f"Option<{t}>", "types::OptionStruct { version }", "None"
        return t, "types::Struct { version }", f"{t}::default()"

    def struct_of(self, name, fields):
        if name in self.emitted:
            return
        self.emitted.add(name)
        about = ""
        if fields is None:
            if name not in self.common:
                sys.exit(f"{self.schema['name']}: struct {name} has no fields and is no common struct")
            fields = self.common[name]["fields"]
        self.structs.append((name, self.render(name, fields, about)))

    def render(self, name, fields, about, top=False):
        out = []
        typed = []
        for f in fields:
            rt, enc, d = self.field_type(f)
            typed.append((f, snake(f["name"]), rt, enc, d, cond(f["versions"], self.valid)))
        vlo, vhi = self.valid
        doc = about or f"`{name}` of {self.schema['name']} (versions {vlo}-{vhi})."
        out.append(f"/// {doc}")
        out.append("#[derive(Debug, Clone, PartialEq)]")
        out.append(f"pub struct {name} {{")
        for f, fname, rt, _, _, c in typed:
            about = f.get("about", "").strip().replace("\n", " ")
            out.append(f"    /// {about} (versions {f['versions']})")
            out.append(f"    pub {fname}: {rt},")
        out.append("}")
        out.append("")
        out.append(f"impl Default for {name} {{")
        out.append("    fn default() -> Self {")
        out.append("        Self {")
        for _, fname, _, _, d, _ in typed:
            out.append(f"            {fname}: {d},")
        out.append("        }")
        out.append("    }")
        out.append("}")
        out.append("")
        out.append(f"impl Encodable for {name} {{")
        out.append("    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {")
        out.append(f"        check_version(\"{name}\", version)?;")
        for _, fname, _, enc, _, c in typed:
            line = f"self.{fname}.put(buf, version)?;"
            out.append(f"        if {c} {{ {line} }}" if c else f"        {line}")
        out.append("        // No tagged fields.")
        out.append("        wire::put_varint(buf, 0);")
        out.append("        Ok(())")
        out.append("    }")
        out.append("")
        out.append("    fn compute_size(&self, version: i16) -> Result<usize> {")
        out.append(f"        check_version(\"{name}\", version)?;")
        out.append("        let mut size = 0;")
        for _, fname, _, enc, _, c in typed:
            line = f"size += self.{fname}.size(version)?;"
            out.append(f"        if {c} {{ {line} }}" if c else f"        {line}")
        out.append("        size += 1;")
        out.append("        Ok(size)")
        out.append("    }")
        out.append("}")
        out.append("")
        out.append(f"impl Decodable for {name} {{")
        out.append("    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {")
        out.append(f"        check_version(\"{name}\", version)?;")
        out.append("        let mut this = Self::default();")
        for _, fname, _, enc, _, c in typed:
            line = f"this.{fname} = Field::get(buf, version)?;"
            out.append(f"        if {c} {{ {line} }}" if c else f"        {line}")
        out.append("        wire::skip_tagged_fields(buf)?;")
        out.append("        Ok(this)")
        out.append("    }")
        out.append("}")
        out.append("")
        out.append(f"impl Field for {name} {{")
        out.append("    fn put<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> { self.encode(buf, version) }")
        out.append("    fn size(&self, version: i16) -> Result<usize> { self.compute_size(version) }")
        out.append("    fn get<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> { Self::decode(buf, version) }")
        out.append("}")
        out.append("")
        if not top:
            out.append(f"impl Field for Option<{name}> {{")
            out.append("    fn put<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> { wire::put_option(self, buf, version) }")
            out.append("    fn size(&self, version: i16) -> Result<usize> { wire::option_size(self, version) }")
            out.append("    fn get<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> { wire::get_option(buf, version) }")
            out.append("}")
            out.append("")
        out.append(f"impl Message for {name} {{")
        out.append(f"    const VERSIONS: VersionRange = VersionRange {{ min: {vlo}, max: {vhi} }};")
        out.append("    const DEPRECATED_VERSIONS: Option<VersionRange> = None;")
        out.append("}")
        out.append("")
        return "\n".join(out)

    def module(self):
        s = self.schema
        name = s["name"]
        body = self.render(name, s["fields"], f"{name} (API key {s['apiKey']}, versions {self.valid[0]}-{self.valid[1]}).", top=True)
        out = [f"/// {name}, generated from `common/message/{name}.json`.",
               f"pub mod {snake(name)} {{",
               "    use super::*;", ""]
        for line in body.splitlines():
            out.append(("    " + line) if line else "")
        for _, text in self.structs:
            for line in text.splitlines():
                out.append(("    " + line) if line else "")
        out.append("    /// Flexible versions: request header v2, response header v1.")
        out.append(f"    impl HeaderVersion for {name} {{")
        hv = 2 if s["type"] == "request" else 1
        out.append(f"        fn header_version(_version: i16) -> i16 {{ {hv} }}")
        out.append("    }")
        out.append("")
        out.append("    fn check_version(what: &str, version: i16) -> Result<()> {")
        out.append(f"        if !({self.valid[0]}..={self.valid[1]}).contains(&version) {{")
        out.append(f"            bail!(\"{{what}}: version {{version}} is not one of {name}'s valid versions {self.valid[0]}-{self.valid[1]}\");")
        out.append("        }")
        out.append("        Ok(())")
        out.append("    }")
        if s["type"] == "request":
            resp = name[: -len("Request")] + "Response"
            out.append("")
            out.append(f"    impl Request for {name} {{")
            out.append(f"        const KEY: i16 = {s['apiKey']};")
            out.append(f"        type Response = super::{snake(resp)}::{resp};")
            out.append("    }")
        out.append("}")
        return "\n".join(out)


HEADER = """// @generated by scripts/gen-streams-group-messages.py from the JSON schemas in {jar}.
// Do not edit: change the generator and run it (streams-group/tests/generated.rs diffs this file).
//! The KIP-1071 streams-group messages (`StreamsGroupHeartbeat`, `StreamsGroupDescribe`), which
//! the `kafka-protocol` crate does not have, generated from Kafka's own schemas onto that crate's
//! traits (with the compact encodings of [`crate::wire`]), so that its framing sends them like
//! any other request.
#![allow(clippy::all)]
#![allow(missing_docs)]

use anyhow::{{Result, bail}};
use kafka_protocol::protocol::buf::{{ByteBuf, ByteBufMut}};
use kafka_protocol::protocol::{{
    Decodable, Encodable, HeaderVersion, Message, Request, StrBytes, VersionRange,
}};

use crate::wire::{{self, Field}};
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jar")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "streams-group", "src", "messages.rs"))
    ap.add_argument("--stdout", action="store_true")
    a = ap.parse_args()
    jar = a.jar or default_jar()
    parts = [HEADER.format(jar=os.path.basename(jar))]
    for m in MESSAGES:
        parts.append(Gen(load(jar, m)).module())
    text = "\n".join(parts) + "\n"
    # Formatted as `cargo fmt` formats it, so that formatting the workspace leaves it unchanged.
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    fmt = subprocess.run(["rustfmt", "--edition", "2024", "--emit", "stdout"], input=text,
                         capture_output=True, text=True, cwd=root)
    if fmt.returncode != 0:
        sys.exit(f"rustfmt failed on the generated code: {fmt.stderr}")
    text = fmt.stdout
    if a.stdout:
        sys.stdout.write(text)
    else:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
