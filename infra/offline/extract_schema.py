"""Write infra/offline/google-schema.json: the hashicorp/google provider schema of every
resource and data source type infra/ uses, in the format of `terraform providers schema -json`,
read from the published npm package @cdktf/provider-google (pinned below by version and
integrity; cached in .local/npm/).

The package carries the provider's schema as the code cdktf generated from it (one
lib/<type>/index.js per resource and data source): the Terraform name and type of every
attribute (getters: getStringAttribute('name'), getListAttribute, ...), whether it is set by
configuration (a setter), optional (a reset method) or computed only (a getter alone), and every
nested block (a put method; its nesting from the class it is read through: OutputReference is a
block of at most one, List a list or, wrapsSet, a set; "required: true" in the generator's
comment is a block of at least one). What the generated code cannot tell, and how this file
approximates it: an optional attribute may also be computed (planned unknown when unset); the
provider marks no deprecations there.

    .venv/bin/python infra/offline/extract_schema.py          # rewrite the subset
    .venv/bin/python infra/offline/extract_schema.py --check  # exit 1 when it is stale

Needs `npm` once (to fetch the package into .local/npm/); the output is committed with its
sha256 (google-schema.json.sha256), so the tests need neither npm nor the network.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
INFRA = ROOT / "infra"
OUT = HERE / "google-schema.json"
SHA = HERE / "google-schema.json.sha256"

PACKAGE = "@cdktf/provider-google"
PACKAGE_VERSION = "16.12.1"
# npm's dist.integrity of that version (sha512 of the tarball).
INTEGRITY = (
    "sha512-KqNA/5RiFT07r0PSZ6/07cJ2zESUgbj1JchVj21iBFBZVUbD+578x"
    "A/k8eq/r0cbyEgLmg9eYWeVslaYah4DCQ=="
)
PROVIDER = "registry.terraform.io/hashicorp/google"
CACHE = ROOT / ".local" / "npm"
TARBALL = CACHE / f"cdktf-provider-google-{PACKAGE_VERSION}.tgz"

SIMPLE = {
    "getStringAttribute": "string",
    "getNumberAttribute": "number",
    "getBooleanAttribute": "bool",
    "getListAttribute": ["list", "string"],
    "getNumberListAttribute": ["list", "number"],
    "getStringMapAttribute": ["map", "string"],
    "getNumberMapAttribute": ["map", "number"],
    "getBooleanMapAttribute": ["map", "bool"],
}
MAPS = {
    "cdktf.StringMap": ["map", "string"],
    "cdktf.NumberMap": ["map", "number"],
    "cdktf.BooleanMap": ["map", "bool"],
    "cdktf.AnyMap": ["map", "dynamic"],
}

CLASS_RE = re.compile(r"^class (\w+) extends cdktf\.(\w+) \{\n(.*?)^\}\n", re.M | re.S)
GETTER_RE = re.compile(r"^    get (\w+)\(\) \{\n\s+return (.*?);\n\s+\}", re.M | re.S)
SIMPLE_RE = re.compile(r"^(cdktf\.Fn\.tolist\()?this\.(\w+)\('([a-z0-9_]+)'\)\)?$")
MEMBER_RE = re.compile(
    r"// ([a-z0-9_]+) - computed: (true|false), optional: (true|false), required: (true|false)\n"
    r"\s+this\._(\w+) = new ([\w.]+)\(this, \"[a-z0-9_]+\"(?:, (true|false))?\);"
)
LIST_ELEMENT_RE = re.compile(r"get\(index\) \{\n\s+return new (\w+)\(")
TYPE_RE = re.compile(r'^(\w+)\.tfResourceType = "([a-z0-9_]+)";', re.M)
HCL_ATTR_RE = re.compile(
    r"^\s+([a-z0-9_]+): \{\n\s+value: .*?,\n\s+isBlock: (true|false),\n\s+type: \"(\w+)\",\n"
    r"\s+storageClassType: \"(\w+)\",",
    re.M,
)


# --- the package -----------------------------------------------------------------------------


def tarball() -> Path:
    """The pinned package, from the cache or fetched with npm, checked against INTEGRITY."""
    if not TARBALL.exists():
        npm = shutil.which("npm")
        if not npm:
            sys.exit(
                "extract_schema: npm is needed once to fetch the package (apt-get install npm)"
            )
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "pack", f"{PACKAGE}@{PACKAGE_VERSION}", "--pack-destination", str(CACHE)],
            check=True,
            capture_output=True,
        )
    digest = base64.b64encode(hashlib.sha512(TARBALL.read_bytes()).digest()).decode()
    if f"sha512-{digest}" != INTEGRITY:
        TARBALL.unlink()
        sys.exit(f"extract_schema: {TARBALL.name} does not match the pinned integrity; removed")
    return TARBALL


def used_types(infra: Path = INFRA) -> dict[str, set[str]]:
    """resource and data source types named in infra/**/*.tf."""
    found: dict[str, set[str]] = {"resource": set(), "data": set()}
    for path in infra.rglob("*.tf"):
        if ".terraform" in path.parts:
            continue
        for kind, name in re.findall(r'^(resource|data) "([a-z0-9_]+)"', path.read_text(), re.M):
            found[kind].add(name)
    return found


# --- generated code -> schema ------------------------------------------------------------------


class Module:
    """The classes of one lib/<type>/index.js."""

    def __init__(self, source: str) -> None:
        self.classes = {m[1]: (m[2], m[3]) for m in CLASS_RE.finditer(source)}
        self.source = source

    def block(self, class_name: str) -> dict[str, Any]:
        _, body = self.classes[class_name]
        setters = set(re.findall(r"^    set (\w+)\(value\)", body, re.M))
        resets = set(re.findall(r"^    reset(\w+)\(\)", body, re.M))
        puts = set(re.findall(r"^    put(\w+)\(value\)", body, re.M))
        members = {m[5]: m for m in MEMBER_RE.finditer(body)}
        attributes: dict[str, Any] = {}
        block_types: dict[str, Any] = {}
        for prop, expr in GETTER_RE.findall(body):
            if prop.endswith("Input") or prop in ("internalValue", "hasAnyValues"):
                continue
            cap = prop[0].upper() + prop[1:]
            simple = SIMPLE_RE.match(expr)
            if simple:
                to_set, method, name = simple.groups()
                if method not in SIMPLE:
                    raise ValueError(f"{class_name}.{prop}: unknown getter {method}")
                ty = SIMPLE[method]
                if to_set:
                    ty = ["set", ty[1]]
                attributes[name] = self._attribute(ty, prop in setters, cap in resets)
                continue
            member = members.get(prop)
            if not member:
                raise ValueError(f"{class_name}.{prop}: cannot read `{expr}`")
            name, _computed, _optional, required, _, cls, wraps_set = member.groups()
            if cls in MAPS:
                attributes[name] = {
                    "type": MAPS[cls],
                    "computed": True,
                    "description_kind": "plain",
                }
                continue
            nesting, element = self._nesting(cls, wraps_set == "true")
            if name == "timeouts":
                nesting = "single"
            inner = self.block(element)
            if cap in puts:
                block_type: dict[str, Any] = {"nesting_mode": nesting, "block": inner}
                if required == "true":
                    block_type["min_items"] = 1
                if nesting == "list" and cls.endswith("OutputReference"):
                    block_type["max_items"] = 1
                block_types[name] = block_type
            else:
                # A computed-only nested attribute: a list (or set) of objects.
                ty = ["object", {a: v["type"] for a, v in inner.get("attributes", {}).items()}]
                for b, v in inner.get("block_types", {}).items():
                    ty[1][b] = ["list", self._object_type(v["block"])]
                outer = "list" if nesting in ("list", "single") else "set"
                attributes[name] = {
                    "type": [outer, ty],
                    "computed": True,
                    "description_kind": "plain",
                }
        out: dict[str, Any] = {"description_kind": "plain"}
        if attributes:
            out["attributes"] = dict(sorted(attributes.items()))
        if block_types:
            out["block_types"] = dict(sorted(block_types.items()))
        return out

    def _object_type(self, block: dict[str, Any]) -> list[Any]:
        fields = {a: v["type"] for a, v in block.get("attributes", {}).items()}
        for b, v in block.get("block_types", {}).items():
            fields[b] = ["list", self._object_type(v["block"])]
        return ["object", fields]

    @staticmethod
    def _attribute(ty: Any, settable: bool, resettable: bool) -> dict[str, Any]:
        if not settable:
            flags = {"computed": True}
        elif resettable:
            # Optional; the generated code does not say whether the provider also computes it.
            flags = {"optional": True, "computed": True}
        else:
            flags = {"required": True}
        return {"type": ty, **flags, "description_kind": "plain"}

    def _nesting(self, cls: str, wraps_set: bool) -> tuple[str, str]:
        if cls.endswith("OutputReference"):
            return "list", cls
        base, body = self.classes[cls]
        if base != "ComplexList":
            raise ValueError(f"{cls}: neither an OutputReference nor a ComplexList")
        element = LIST_ELEMENT_RE.search(body)
        if not element:
            raise ValueError(f"{cls}: no element class")
        return ("set" if wraps_set else "list"), element[1]


def provider_block(source: str) -> dict[str, Any]:
    """The provider's configuration: every argument optional (synthesizeHclAttributes)."""
    body = source[source.index("synthesizeHclAttributes()") :]
    attributes: dict[str, Any] = {}
    block_types: dict[str, Any] = {}
    storage = {
        "string": "string",
        "number": "number",
        "boolean": "bool",
        "stringList": ["list", "string"],
        "stringMap": ["map", "string"],
    }
    for name, is_block, kind, storage_type in HCL_ATTR_RE.findall(body):
        if name == "alias":
            continue  # a meta-argument, not part of the provider's schema
        if is_block == "true":
            struct = storage_type.removesuffix("List")
            fn = struct[0].lower() + struct[1:] + "ToHclTerraform"
            fbody = source[source.index(f"function {fn}(") :]
            fbody = fbody[: fbody.index("\n}\n")]
            inner = {
                n: {"type": storage[s], "optional": True, "description_kind": "plain"}
                for n, b, _, s in HCL_ATTR_RE.findall(fbody)
                if b == "false"
            }
            block_types[name] = {
                "nesting_mode": "list",
                "block": {"attributes": inner, "description_kind": "plain"},
                "max_items": 1,
            }
        else:
            if storage_type not in storage:
                raise ValueError(f"provider.{name}: unknown storage {storage_type} ({kind})")
            attributes[name] = {
                "type": storage[storage_type],
                "optional": True,
                "description_kind": "plain",
            }
    return {
        "attributes": dict(sorted(attributes.items())),
        "block_types": dict(sorted(block_types.items())),
        "description_kind": "plain",
    }


def extract(path: Path, wanted: dict[str, set[str]]) -> dict[str, Any]:
    modules: dict[tuple[str, str], tuple[Module, str]] = {}
    provider_source = ""
    provider_version = ""
    with tarfile.open(path) as tar:
        for member in tar:
            if member.name == "package/package.json":
                meta = json.load(tar.extractfile(member))  # type: ignore[arg-type]
                provider_version = meta["cdktf"]["provider"]["version"]
            if not (member.name.startswith("package/lib/") and member.name.endswith("/index.js")):
                continue
            source = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
            if member.name == "package/lib/provider/index.js":
                provider_source = source
                continue
            for class_name, tf_type in TYPE_RE.findall(source):
                module = Module(source)
                base = module.classes.get(class_name, ("", ""))[0]
                kind = {"TerraformResource": "resource", "TerraformDataSource": "data"}.get(base)
                if kind and tf_type in wanted[kind]:
                    modules[(kind, tf_type)] = (module, class_name)
    missing = {(k, t) for k, ts in wanted.items() for t in ts} - set(modules)
    if missing:
        raise SystemExit(f"extract_schema: not in {PACKAGE}@{PACKAGE_VERSION}: {sorted(missing)}")
    schemas: dict[str, dict[str, Any]] = {"resource": {}, "data": {}}
    for (kind, tf_type), (module, class_name) in sorted(modules.items()):
        schemas[kind][tf_type] = {"version": 0, "block": module.block(class_name)}
    return {
        "format_version": "1.0",
        "source": {
            "package": f"{PACKAGE}@{PACKAGE_VERSION}",
            "integrity": INTEGRITY,
            "provider_version": provider_version,
        },
        "provider_schemas": {
            PROVIDER: {
                "provider": {"version": 0, "block": provider_block(provider_source)},
                "resource_schemas": schemas["resource"],
                "data_source_schemas": schemas["data"],
            }
        },
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when the file is stale")
    args = parser.parse_args()
    text = render(extract(tarball(), used_types()))
    digest = hashlib.sha256(text.encode()).hexdigest()
    if args.check:
        stale = not OUT.exists() or OUT.read_text() != text
        print(f"{OUT.name}: {'stale' if stale else 'up to date'}")
        return 1 if stale else 0
    OUT.write_text(text)
    SHA.write_text(f"{digest}  {OUT.name}\n")
    print(f"{OUT.relative_to(ROOT)}: {len(text)} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
