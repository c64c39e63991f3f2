#!/usr/bin/env python3
"""openapi.yaml against the real server: every documented operation answers as documented.

    python3 tests/http/openapi_test.py <path-to-orderengine> [--spec openapi.yaml] [--backend sqlite|postgresql]

Starts `orderengine serve --demo` on a free port with a throwaway SQLite file (or PostgreSQL
database through OE_TEST_PG_ADMIN_URL, with Redis when OE_TEST_REDIS_URL is set), mints tokens with
`orderengine token`, and for every (path, method) in openapi.yaml exercises at least one
documented success response and, where the operation documents them, 401 (no token), 403 (a
role outside x-roles) and 400 (missing Idempotency-Key, unknown body field). Every answer must
have a documented status, the documented headers (traceparent, Idempotent-Replayed) and content
type, and a body that validates against the documented schema (a small validator for the JSON
Schema subset the document uses, below). It also fails when the server serves a route the
document does not list: the routes dispatched in src/http/api.cpp route() and src/app/main.cpp
are compared with the document, and every undocumented method on a documented path must
answer 404. Prints one `ok - …` / `FAIL - …` line per check; exit code 0 only when all pass.
Standard library + PyYAML (Debian: python3-yaml).
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
METHODS = ("get", "post", "put", "patch", "delete")
SECRET = "openapi-test-secret"

# The routes the server dispatches, by handler: api.cpp's route() calls these functions (a
# handler that is not listed here fails the test, so a new route cannot go undocumented).
API_HANDLERS = {
    "catalog": [("GET", "/api/catalog")],
    "credit": [("GET", "/api/credit")],
    "orders": [("GET", "/api/orders")],
    "order": [("GET", "/api/orders/{id}")],
    "place_order": [("POST", "/api/orders")],
    "cancel_order": [("POST", "/api/orders/{id}/cancel")],
    "release_credit_hold": [("POST", "/api/admin/orders/{id}/release-credit-hold")],
    "event_feed": [("GET", "/api/events")],
    "finance_audit": [("GET", "/api/finance/orders/{id}/audit")],
    "finance_replay": [("GET", "/api/finance/replay")],
    "projections_status": [("GET", "/api/admin/projections")],
    "rebuild_projection": [("POST", "/api/admin/projections/{name}/rebuild")],
    "erp_status": [("GET", "/api/admin/erp")],
    "erp_sync": [("POST", "/api/admin/erp/sync")],
    "erp_retry": [("POST", "/api/admin/erp/dead-letters/{id}/retry")],
    "register_partner": [("POST", "/api/admin/partners")],
    "update_partner": [("PATCH", "/api/admin/partners/{id}")],
    "register_product": [("POST", "/api/admin/products")],
    "update_product": [("PATCH", "/api/admin/products/{sku}")],
    "register_warehouse": [("POST", "/api/admin/warehouses")],
    "change_tier": [("PUT", "/api/admin/tiers/{tier}")],
    "config_write": [("PUT", "/api/admin/config/{key}"), ("DELETE", "/api/admin/config/{key}")],
    "config_read": [("GET", "/api/admin/config"), ("GET", "/api/admin/config/{key}")],
    "config_history": [("GET", "/api/admin/config/{key}/history")],
}
# main.cpp answers these itself; everything else under /api/ goes to route().
MAIN_ROUTES = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")}
# Sample values for path parameters when probing undocumented methods.
SAMPLE_PARAMS = {"id": "999999", "key": "erp.max_rps", "tier": "GOLD", "name": "pricing",
                 "sku": "NO-SUCH-SKU"}
TRACEPARENT_IN = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


# ---------------------------------------------------------------------------------------------
# The document and a validator for the subset of JSON Schema (OpenAPI 3.0 flavour) it uses.

SUPPORTED = {"type", "properties", "required", "additionalProperties", "items", "enum",
             "nullable", "oneOf", "allOf", "pattern", "minimum", "maximum", "minLength",
             "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "$ref"}
ANNOTATIONS = {"description", "format", "example", "title"}


class Spec:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)

    def resolve(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"only local $refs are supported: {ref}")
            cur = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(cur, dict) or part not in cur:
                    raise ValueError(f"dangling $ref {ref}")
                cur = cur[part]
            node = cur
            seen += 1
            if seen > 50:
                raise ValueError(f"$ref loop at {ref}")
        return node

    def operations(self):
        for path, item in self.doc.get("paths", {}).items():
            for method in METHODS:
                if method in item:
                    yield method.upper(), path, item[method]

    def operation(self, method, path):
        return self.doc.get("paths", {}).get(path, {}).get(method.lower())

    def parameters(self, op):
        return [self.resolve(p) for p in op.get("parameters", [])]

    def request_schema(self, op):
        body = op.get("requestBody")
        if not body:
            return None
        media = self.resolve(body).get("content", {}).get("application/json")
        return media.get("schema") if media else None


def json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def type_ok(expected, value):
    actual = json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    return actual == expected


def validate(spec, schema, value, where="$"):
    """Errors of `value` against `schema` (empty when it validates)."""
    schema = spec.resolve(schema)
    unknown = set(schema) - SUPPORTED - ANNOTATIONS
    if unknown:
        return [f"{where}: the schema uses {sorted(unknown)}, which this validator does not know"]
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null is not allowed"]
    errors = []
    if "type" in schema and not type_ok(schema["type"], value):
        return [f"{where}: expected {schema['type']}, got {json_type(value)}"]
    if "enum" in schema and not any(
            json_type(value) == json_type(e) and value == e for e in schema["enum"]):
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']}")
    if json_type(value) in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > maximum {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += validate(spec, schema["items"], item, f"{where}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{where}: required property '{name}' is missing")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in props:
                errors += validate(spec, props[name], item, f"{where}.{name}")
            elif extra is False:
                errors.append(f"{where}: property '{name}' is not documented")
            elif isinstance(extra, dict):
                errors += validate(spec, extra, item, f"{where}.{name}")
        if len(value) < schema.get("minProperties", 0):
            errors.append(f"{where}: fewer than {schema['minProperties']} properties")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append(f"{where}: more than {schema['maxProperties']} properties")
    for sub in schema.get("allOf", []):
        errors += validate(spec, sub, value, where)
    if "oneOf" in schema:
        results = [validate(spec, sub, value, where) for sub in schema["oneOf"]]
        matched = sum(1 for r in results if not r)
        if matched != 1:
            detail = "; ".join(r[0] for r in results if r)[:400]
            errors.append(f"{where}: matches {matched} of the oneOf schemas, not 1 ({detail})")
    return errors


def lint_schemas(spec):
    """Every $ref resolves and every schema keyword is one the validator knows."""
    problems = []

    def walk_schema(node, where):
        if not isinstance(node, dict):
            problems.append(f"{where}: a schema must be a mapping")
            return
        try:
            target = spec.resolve(node)
        except ValueError as e:
            problems.append(f"{where}: {e}")
            return
        if "$ref" in node:
            return  # Checked where it is defined.
        unknown = set(target) - SUPPORTED - ANNOTATIONS
        if unknown:
            problems.append(f"{where}: unsupported keywords {sorted(unknown)}")
        for name, sub in target.get("properties", {}).items():
            walk_schema(sub, f"{where}.properties.{name}")
        if isinstance(target.get("items"), dict):
            walk_schema(target["items"], f"{where}.items")
        if isinstance(target.get("additionalProperties"), dict):
            walk_schema(target["additionalProperties"], f"{where}.additionalProperties")
        for key in ("oneOf", "allOf"):
            for i, sub in enumerate(target.get(key, [])):
                walk_schema(sub, f"{where}.{key}[{i}]")

    def walk(node, where):
        if isinstance(node, dict):
            if "$ref" in node:
                try:
                    spec.resolve(node)
                except ValueError as e:
                    problems.append(f"{where}: {e}")
            for key, sub in node.items():
                if key == "schema":
                    walk_schema(sub, f"{where}.schema")
                else:
                    walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(spec.doc.get("paths", {}), "paths")
    for name, schema in spec.doc.get("components", {}).get("schemas", {}).items():
        walk_schema(schema, f"components.schemas.{name}")
    walk({k: v for k, v in spec.doc.get("components", {}).items() if k != "schemas"},
         "components")
    return problems


# ---------------------------------------------------------------------------------------------
# HTTP.

class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.text = body.decode("utf-8", errors="replace")
        try:
            self.json = json.loads(self.text) if self.text else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name.lower())

    def code(self):
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), dict):
            return self.json["error"].get("code")
        return None

    def message(self):
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), dict):
            return self.json["error"].get("message", "")
        return ""


def http_request(port, method, target, headers, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, target, body=body, headers=headers)
        r = conn.getresponse()
        return Reply(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def raw_request(port, data):
    """Sends raw bytes (a body the server may refuse before reading it all) and parses the
    answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # The server answered and closed before taking the whole body.
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        s.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if ":" in line]
    length = dict((k.lower(), v) for k, v in headers).get("content-length")
    if length is not None:
        body = body[:int(length)]
    return Reply(status, headers, body)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------------------------
# The checks.

class Checker:
    def __init__(self, spec, port):
        self.spec = spec
        self.port = port
        self.passed = 0
        self.failed = 0
        self.seen = {}  # (method, template) -> {"statuses": set, "codes": set, "roles": {...}}
        self.role_of = {}  # token -> role name
        self.keys = 0

    # -- reporting
    def ok(self, name):
        self.passed += 1
        print(f"ok - {name}", flush=True)

    def fail(self, name, why):
        self.failed += 1
        print(f"FAIL - {name}: {why}", flush=True)

    def check(self, name, problems):
        problems = [p for p in problems if p]
        if problems:
            self.fail(name, "; ".join(problems)[:1500])
        else:
            self.ok(name)
        return not problems

    def key(self, prefix="k"):
        self.keys += 1
        return f"{prefix}-{os.getpid()}-{self.keys}"

    # -- one request against one documented operation
    def send(self, method, target, token=None, headers=None, body=None):
        hdrs = {}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        hdrs.update(headers or {})
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else body
            if not isinstance(body, (str, bytes)):
                data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        return http_request(self.port, method, target, hdrs, data)

    def call(self, label, method, template, path=None, *, token=None, key=None, headers=None,
             body=None, query=None, expect, extra=None, reply=None):
        """Sends (unless `reply` is given) and checks the answer against the operation.
        `expect`: a status or a set of statuses; `extra(reply)` → list of further problems."""
        op = self.spec.operation(method, template)
        hdrs = dict(headers or {})
        if key is not None:
            hdrs["Idempotency-Key"] = key
        target = path or template
        if query:
            # The server does not percent-decode query values: send ':' as it is.
            target += "?" + urllib.parse.urlencode(query, safe=":")
        send_body = body if not isinstance(body, (dict, list)) else json.dumps(body)
        if reply is None:
            reply = self.send(method, target, token, hdrs, send_body)
        expected = expect if isinstance(expect, (set, frozenset)) else {expect}
        problems = []
        if op is None:
            problems.append(f"{method} {template} is not documented")
        if reply.status not in expected:
            problems.append(f"status {reply.status}, expected {sorted(expected)} "
                            f"(body {reply.text[:200]!r})")
        if op is not None:
            problems += self.check_reply(op, reply)
            if isinstance(body, (dict, list)) and 200 <= reply.status < 300:
                schema = self.spec.request_schema(op)
                if schema is None:
                    problems.append("the operation documents no JSON request body")
                else:
                    problems += [f"request {p}" for p in validate(self.spec, schema, body)]
            self.record(method, template, reply, token)
        if extra is not None and not problems:
            problems += extra(reply) or []
        self.check(f"{method} {template} {label} → {reply.status}", problems)
        return reply

    def check_reply(self, op, reply):
        problems = []
        documented = op.get("responses", {})
        if str(reply.status) not in documented:
            return [f"status {reply.status} is not documented for this operation "
                    f"(documented: {sorted(documented)})"]
        response = self.spec.resolve(documented[str(reply.status)])
        headers = {name.lower(): self.spec.resolve(h)
                   for name, h in response.get("headers", {}).items()}
        for name, h in headers.items():
            value = reply.header(name)
            if value is None:
                if h.get("required"):
                    problems.append(f"header {name} is missing")
                continue
            if "schema" in h:
                problems += [f"header {name}: {p}"
                             for p in validate(self.spec, h["schema"], value, name)]
        for name in ("traceparent", "idempotent-replayed", "content-disposition"):
            if reply.header(name) is not None and name not in headers:
                problems.append(f"header {name} is sent but not documented for "
                                f"{reply.status}")
        content = response.get("content", {})
        ctype = (reply.header("content-type") or "").split(";")[0].strip().lower()
        if not content:
            if reply.body:
                problems.append(f"a body is sent but {reply.status} documents none")
            return problems
        if ctype not in content:
            return problems + [f"content type {ctype!r} is not documented "
                               f"(documented: {sorted(content)})"]
        schema = content[ctype].get("schema", {})
        if ctype == "application/json":
            if reply.json is None and reply.text != "null":
                return problems + [f"the body is not JSON: {reply.text[:200]!r}"]
            problems += validate(self.spec, schema, reply.json)[:8]
        else:
            problems += validate(self.spec, schema, reply.text)[:8]
        return problems

    def record(self, method, template, reply, token):
        entry = self.seen.setdefault((method, template),
                                     {"statuses": set(), "codes": set(), "roles": []})
        entry["statuses"].add(str(reply.status))
        code = reply.code()
        if reply.status == 400 and code:
            entry["codes"].add(code)
            if code == "invalid_request" and "unknown field" in reply.message():
                entry["codes"].add("unknown_field")
        entry["roles"].append((self.role_of.get(token, "anonymous"), reply.status,
                               reply.message()))

    def replay(self, label, method, template, first, path=None, *, token, key, body=None,
               headers=None):
        """The same key and request again: the stored status and body, Idempotent-Replayed."""
        def same(reply):
            problems = []
            if reply.header("Idempotent-Replayed") != "true":
                problems.append("no Idempotent-Replayed: true")
            if reply.body != first.body:
                problems.append("the replayed body differs from the first answer")
            return problems
        return self.call(f"{label} (same key again: replayed)", method, template, path,
                         token=token, key=key, body=body, headers=headers,
                         expect=first.status, extra=same)

    # -- end-of-run checks
    def coverage(self):
        for method, template, op in self.spec.operations():
            name = f"{method} {template}"
            entry = self.seen.get((method, template))
            if entry is None:
                self.fail(f"{name} is exercised", "no request reached it")
                continue
            statuses = entry["statuses"]
            documented = set(op.get("responses", {}))
            problems = []
            if not statuses & {s for s in documented if s.startswith("2")}:
                problems.append("no documented 2xx answer was seen")
            for status in ("401", "403"):
                if status in documented and status not in statuses:
                    problems.append(f"the documented {status} was not exercised")
            params = self.spec.parameters(op)
            if any(p.get("name") == "Idempotency-Key" and p.get("required") for p in params) \
                    and "idempotency_key_required" not in entry["codes"]:
                problems.append("400 idempotency_key_required was not exercised")
            schema = self.spec.request_schema(op)
            if schema is not None and self.spec.resolve(schema).get(
                    "additionalProperties") is False and "unknown_field" not in entry["codes"]:
                problems.append("400 for an unknown body field was not exercised")
            roles = op.get("x-roles")
            if template.startswith("/api/") and not roles:
                problems.append("no x-roles")
            for role, status, message in entry["roles"]:
                if not roles or role in ("anonymous",) or "anyone" in roles:
                    continue
                if 200 <= status < 300 and role not in roles:
                    problems.append(f"role {role} got {status} but x-roles is {roles}")
                if status == 403 and message == "this role may not do that" and role in roles:
                    problems.append(f"role {role} is in x-roles but was refused by role")
            if self.check(f"{name}: covered (seen {', '.join(sorted(statuses))})", problems):
                missing = sorted(documented - statuses)
                if missing:
                    print(f"#   {name}: documented but not provoked here: {', '.join(missing)}")


def static_routes(checker, spec):
    """The routes in the sources, compared with the document."""
    documented = {(m, p) for m, p, _ in spec.operations()}
    api_cpp = os.path.join(ROOT, "src", "http", "api.cpp")
    main_cpp = os.path.join(ROOT, "src", "app", "main.cpp")
    try:
        with open(api_cpp, encoding="utf-8") as f:
            api = f.read()
        with open(main_cpp, encoding="utf-8") as f:
            main = f.read()
    except OSError as e:
        checker.fail("the sources are readable", str(e))
        return
    start = api.find("Step<Response> route(const Request& request)")
    end = api.find("Api::Api(", start)
    if start < 0 or end < 0:
        checker.fail("api.cpp has route()", "route() not found")
        return
    body = api[start:end]
    called = set(re.findall(r"\b([a-z_]+)\(p\b[,)]", body))
    unknown = sorted(called - set(API_HANDLERS))
    stale = sorted(set(API_HANDLERS) - called)
    checker.check(f"api.cpp route() dispatches to the {len(API_HANDLERS)} known handlers", [
        f"route() calls {', '.join(unknown)}, which this test does not know: document the "
        f"route in openapi.yaml and add it to API_HANDLERS" if unknown else "",
        f"route() no longer calls {', '.join(stale)}" if stale else ""])
    served = {r for h in called & set(API_HANDLERS) for r in API_HANDLERS[h]}
    main_routes = set(re.findall(r'request\.method == "(\w+)" && path == "(/[^"]*)"', main))
    checker.check("main.cpp serves /health, /ready and /metrics itself", [
        f"main.cpp serves {sorted(main_routes - MAIN_ROUTES)} too"
        if main_routes - MAIN_ROUTES else "",
        f"main.cpp no longer serves {sorted(MAIN_ROUTES - main_routes)}"
        if MAIN_ROUTES - main_routes else ""])
    served |= main_routes
    checker.check("every route the server dispatches is documented", [
        f"{m} {p} is served but not in openapi.yaml" for m, p in sorted(served - documented)])
    checker.check("every documented operation is a route the server dispatches", [
        f"{m} {p} is documented but not dispatched" for m, p in sorted(documented - served)])
    rt_start = main.find("std::string route_template(")
    rt_end = main.find("\n}\n", rt_start)
    templates = set(re.findall(r'(?:return|==|\?|:)\s*"(/[^"]*)"', main[rt_start:rt_end]))
    paths = {p for _, p in documented if p.startswith("/api/")}
    checker.check("main.cpp's route_template() names exactly the documented /api paths", [
        f"route_template() has {t}, not documented" for t in sorted(templates - paths)] + [
        f"{p} is documented but route_template() does not name it"
        for p in sorted(paths - templates)])


def oversized_bodies(checker, spec, token):
    """Every operation that documents 413 answers a body over 1 MiB with it."""
    big = b"{" + b" " * (1024 * 1024 + 16) + b"}"
    for method, template, op in spec.operations():
        if "413" not in op.get("responses", {}):
            continue
        target = re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS.get(m.group(1), "x"), template)
        head = (f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\nIdempotency-Key: {checker.key('big')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(big)}\r\n\r\n")
        checker.call("body over 1 MiB", method, template, target, expect=413,
                     reply=raw_request(checker.port, head.encode() + big))


def probe_methods(checker, spec, admin):
    """On every documented path, every undocumented method answers 404 (nothing else is
    served there). Sent without Idempotency-Key or body, so nothing can change."""
    for path, item in spec.doc.get("paths", {}).items():
        target = re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS.get(m.group(1), "x"), path)
        problems = []
        probed = []
        for method in METHODS:
            if method in item:
                continue
            probed.append(method.upper())
            reply = checker.send(method.upper(), target, admin)
            schema = {"$ref": "#/components/schemas/Error404"}
            if reply.status != 404:
                problems.append(f"{method.upper()} {target} → {reply.status}")
            elif reply.json is None or validate(spec, schema, reply.json):
                problems.append(f"{method.upper()} {target}: 404 body {reply.text[:100]!r}")
        checker.check(f"{path}: undocumented methods ({', '.join(probed)}) answer 404", problems)


# ---------------------------------------------------------------------------------------------
# The scenario.

def run(checker, spec, binary, port, sim_port, tokens):
    c = checker
    reseller, other, ghost, p004, agent, admin, finance = (
        tokens[k] for k in ("reseller", "other", "ghost", "p004", "agent", "admin", "finance"))
    garbled = "x.y.z"

    # ---- ops
    c.call("anonymous", "GET", "/health", expect=200)
    c.call("continues an incoming traceparent", "GET", "/health",
           headers={"traceparent": TRACEPARENT_IN}, expect=200,
           extra=lambda r: [] if (r.header("traceparent") or "").split("-")[1:2] ==
           [TRACEPARENT_IN.split("-")[1]] else [f"traceparent {r.header('traceparent')}"])
    deadline = time.time() + 15
    while time.time() < deadline and c.send("GET", "/ready").status != 200:
        time.sleep(0.1)
    c.call("anonymous", "GET", "/ready", expect=200)
    c.call("anonymous", "GET", "/metrics", expect=200,
           extra=lambda r: [] if "http_request_duration_seconds" in r.text else ["no metrics"])

    # Every ERP call now gets an unusable answer: orders are never accepted (so they stay
    # cancellable) and the first delivery is parked as a dead letter after 10 attempts.
    sim(c, sim_port, {"fault": "error_body"})

    # ---- catalog and credit
    for template in ("/api/catalog", "/api/credit"):
        c.call("reseller", "GET", template, token=reseller, expect=200)
        c.call("agent for P-001", "GET", template, token=agent,
               headers={"X-On-Behalf-Of": "P-001"}, expect=200)
        c.call("no token", "GET", template, expect=401)
        c.call("garbled token", "GET", template, token=garbled, expect=401)
        c.call("admin (wrong role)", "GET", template, token=admin, expect=403)
        c.call("finance (wrong role)", "GET", template, token=finance, expect=403)
        c.call("agent without X-On-Behalf-Of", "GET", template, token=agent, expect=400)
        c.call("agent for a stranger", "GET", template, token=agent,
               headers={"X-On-Behalf-Of": "P-004"}, expect=403)
        c.call("unregistered partner", "GET", template, token=ghost, expect=422)

    # ---- place orders
    order = {"lines": [{"sku": "SRM-VITC-30", "qty": 3}], "note": "openapi test"}
    k = c.key()
    first = c.call("reseller", "POST", "/api/orders", token=reseller, key=k, body=order,
                   expect=201, extra=lambda r: [] if r.json["status"] == "placed" else
                   [f"status {r.json['status']}"])
    c.replay("reseller", "POST", "/api/orders", first, token=reseller, key=k, body=order)
    c.call("same key, other body", "POST", "/api/orders", token=reseller, key=k,
           body={"lines": [{"sku": "SRM-VITC-30", "qty": 4}]}, expect=422,
           extra=lambda r: [] if r.code() == "idempotency_key_reuse" else [r.code()])
    order_id = first.json["order_id"]
    second = c.call("reseller, to cancel", "POST", "/api/orders", token=reseller, key=c.key(),
                    body=order, expect=201)
    cancel_id = second.json["order_id"]
    held = c.call("agent for P-001, over its credit", "POST", "/api/orders", token=agent,
                  key=c.key(), headers={"X-On-Behalf-Of": "P-001"},
                  body={"lines": [{"sku": "SRM-VITC-30", "qty": 30}]}, expect=201,
                  extra=lambda r: [] if r.json["status"] == "credit_hold" and
                  r.json["warehouse"] is None and r.json["on_behalf_of"] == "P-001" else
                  [f"{r.json['status']} {r.json['warehouse']} {r.json['on_behalf_of']}"])
    held_id = held.json["order_id"]
    agents = c.call("agent for P-002", "POST", "/api/orders", token=agent, key=c.key(),
                    headers={"X-On-Behalf-Of": "P-002"},
                    body={"lines": [{"sku": "CLN-GEL-100", "qty": 12}]}, expect=201)
    agent_order = agents.json["order_id"]
    c.call("no Idempotency-Key", "POST", "/api/orders", token=reseller, body=order, expect=400,
           extra=lambda r: [] if r.code() == "idempotency_key_required" else [r.code()])
    c.call("client-supplied price (unknown line field)", "POST", "/api/orders", token=reseller,
           key=c.key(), body={"lines": [{"sku": "SRM-VITC-30", "qty": 3, "unit_price": 1}]},
           expect=400, extra=lambda r: [] if "unit_price" in r.message() else [r.message()])
    c.call("unknown top-level field", "POST", "/api/orders", token=reseller, key=c.key(),
           body={"lines": [{"sku": "SRM-VITC-30", "qty": 3}], "price": 1}, expect=400)
    c.call("malformed JSON", "POST", "/api/orders", token=reseller, key=c.key(),
           body='{"lines":', expect=400,
           extra=lambda r: [] if r.code() == "invalid_json" else [r.code()])
    c.call("no token", "POST", "/api/orders", body=order, key=c.key(), expect=401)
    c.call("admin (wrong role)", "POST", "/api/orders", token=admin, key=c.key(), body=order,
           expect=403)
    c.call("agent for a stranger", "POST", "/api/orders", token=agent, key=c.key(),
           headers={"X-On-Behalf-Of": "P-004"}, body=order, expect=403)
    c.call("below the minimum order", "POST", "/api/orders", token=reseller, key=c.key(),
           body={"lines": [{"sku": "SRM-VITC-30", "qty": 1}]}, expect=422,
           extra=lambda r: [] if r.code() == "below_minimum_order" else [r.code()])
    c.call("unknown SKU", "POST", "/api/orders", token=reseller, key=c.key(),
           body={"lines": [{"sku": "NOPE-1", "qty": 5}]}, expect=422,
           extra=lambda r: [] if r.code() == "unknown_sku" else [r.code()])
    c.call("more than any warehouse holds", "POST", "/api/orders", token=p004, key=c.key(),
           body={"lines": [{"sku": "LIP-BALM-10", "qty": 876}]}, expect=422,
           extra=lambda r: [] if r.code() == "insufficient_stock" else [r.code()])
    big = b"{" + b" " * (1024 * 1024 + 16) + b"}"
    head = (f"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {reseller}"
            f"\r\nIdempotency-Key: {c.key()}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(big)}\r\n\r\n").encode()
    c.call("body over 1 MiB", "POST", "/api/orders", expect=413,
           reply=raw_request(port, head + big))

    # ---- read orders
    c.call("reseller", "GET", "/api/orders", token=reseller, expect=200,
           extra=lambda r: [] if len(r.json["orders"]) == 2 else [f"{len(r.json['orders'])}"])
    c.call("limit=1 (a next page)", "GET", "/api/orders", token=reseller,
           query={"limit": 1}, expect=200,
           extra=lambda r: [] if r.json["next_after"] else ["next_after is null"])
    c.call("status filter", "GET", "/api/orders", token=agent,
           headers={"X-On-Behalf-Of": "P-001"}, query={"status": "credit_hold"}, expect=200,
           extra=lambda r: [] if [o["order_id"] for o in r.json["orders"]] == [held_id] else
           ["not the held order"])
    c.call("after cursor", "GET", "/api/orders", token=reseller,
           query={"after": order_id}, expect=200)
    c.call("limit out of range", "GET", "/api/orders", token=reseller, query={"limit": 0},
           expect=400)
    c.call("unknown status", "GET", "/api/orders", token=reseller, query={"status": "x"},
           expect=400)
    c.call("unknown parameter", "GET", "/api/orders", token=reseller, query={"page": 2},
           expect=400)
    c.call("agent without X-On-Behalf-Of", "GET", "/api/orders", token=agent, expect=400)
    c.call("no token", "GET", "/api/orders", expect=401)
    c.call("finance (wrong role)", "GET", "/api/orders", token=finance, expect=403)
    one = f"/api/orders/{order_id}"
    c.call("owner", "GET", "/api/orders/{id}", one, token=reseller, expect=200,
           extra=lambda r: [] if r.json["order_id"] == order_id else ["another order"])
    c.call("admin", "GET", "/api/orders/{id}", one, token=admin, expect=200)
    c.call("finance", "GET", "/api/orders/{id}", one, token=finance, expect=200)
    c.call("agent of the owner", "GET", "/api/orders/{id}", f"/api/orders/{held_id}",
           token=agent, expect=200)
    c.call("another partner's order (not yours → 404)", "GET", "/api/orders/{id}", one,
           token=other, expect=404)
    c.call("agent not acting for the owner", "GET", "/api/orders/{id}", one, token=agent,
           expect=404)
    c.call("unknown id", "GET", "/api/orders/{id}", "/api/orders/O-NOPE", token=admin,
           expect=404)
    c.call("no token", "GET", "/api/orders/{id}", one, expect=401)

    # ---- cancel
    tpl = "/api/orders/{id}/cancel"
    path = f"/api/orders/{cancel_id}/cancel"
    c.call("finance (wrong role)", "POST", tpl, path, token=finance, key=c.key(), expect=403)
    c.call("no token", "POST", tpl, path, key=c.key(), expect=401)
    c.call("no Idempotency-Key", "POST", tpl, path, token=reseller, expect=400)
    c.call("a body field", "POST", tpl, path, token=reseller, key=c.key(), body={"why": "x"},
           expect=400)
    c.call("someone else's order", "POST", tpl, path, token=other, key=c.key(), expect=404)
    c.call("agent without X-On-Behalf-Of", "POST", tpl, path, token=agent, key=c.key(),
           expect=400)
    k = c.key()
    done = c.call("owner", "POST", tpl, path, token=reseller, key=k, expect=200,
                  extra=lambda r: [] if r.json["status"] == "cancelled" else [r.json["status"]])
    c.replay("owner", "POST", tpl, done, path, token=reseller, key=k)
    c.call("again (not cancellable)", "POST", tpl, path, token=reseller, key=c.key(),
           body={}, expect=409,
           extra=lambda r: [] if r.code() == "not_cancellable" else [r.code()])
    c.call("agent for P-002", "POST", tpl, f"/api/orders/{agent_order}/cancel", token=agent,
           key=c.key(), headers={"X-On-Behalf-Of": "P-002"}, expect=200)
    extra_order = c.call("reseller, for the admin to cancel", "POST", "/api/orders",
                         token=reseller, key=c.key(), body=order, expect=201)
    c.call("admin", "POST", tpl, f"/api/orders/{extra_order.json['order_id']}/cancel",
           token=admin, key=c.key(), expect=200)

    # ---- release credit hold
    tpl = "/api/admin/orders/{id}/release-credit-hold"
    path = f"/api/admin/orders/{held_id}/release-credit-hold"
    c.call("reseller (wrong role)", "POST", tpl, path, token=reseller, key=c.key(), expect=403)
    c.call("no token", "POST", tpl, path, key=c.key(), expect=401)
    c.call("no Idempotency-Key", "POST", tpl, path, token=admin, expect=400)
    c.call("a body field", "POST", tpl, path, token=admin, key=c.key(), body={"force": True},
           expect=400)
    c.call("unknown order", "POST", tpl, "/api/admin/orders/O-NOPE/release-credit-hold",
           token=admin, key=c.key(), expect=404)
    k = c.key()
    released = c.call("admin", "POST", tpl, path, token=admin, key=k, expect=200,
                      extra=lambda r: [] if r.json["status"] == "placed" and
                      r.json["warehouse"] else [f"{r.json['status']} {r.json['warehouse']}"])
    c.replay("admin", "POST", tpl, released, path, token=admin, key=k)
    c.call("not on hold any more", "POST", tpl, path, token=finance, key=c.key(), expect=409,
           extra=lambda r: [] if r.code() == "not_on_hold" else [r.code()])

    # ---- event feed
    feed = c.call("admin, everything", "GET", "/api/events", token=admin,
                  query={"after": 0, "limit": 1000}, expect=200)
    c.call("finance, defaults", "GET", "/api/events", token=finance, expect=200,
           extra=lambda r: [] if len(r.json["events"]) == min(100, len(feed.json["events"]))
           and r.json["events"][0]["global_position"] == 1 else ["not the first 100"])
    c.call("past the head", "GET", "/api/events", token=admin,
           query={"after": feed.json["next_after"] + 1000}, expect=200,
           extra=lambda r: [] if r.json["events"] == [] else ["events past the head"])
    c.call("limit over 1000", "GET", "/api/events", token=admin, query={"limit": 1001},
           expect=400)
    c.call("not an integer", "GET", "/api/events", token=admin, query={"after": "x"},
           expect=400)
    c.call("unknown parameter", "GET", "/api/events", token=admin, query={"from": 1},
           expect=400)
    c.call("no token", "GET", "/api/events", expect=401)
    c.call("reseller (wrong role)", "GET", "/api/events", token=reseller, expect=403)
    head = feed.json["next_after"]
    some_instant = feed.json["events"][len(feed.json["events"]) // 2]["recorded_at"]

    # ---- finance: audit and replay
    tpl = "/api/finance/orders/{id}/audit"
    c.call("finance", "GET", tpl, f"/api/finance/orders/{order_id}/audit", token=finance,
           expect=200, extra=lambda r: [] if r.json["consistent"] is True else ["inconsistent"])
    c.call("finance, an order released from hold", "GET", tpl,
           f"/api/finance/orders/{held_id}/audit", token=finance, expect=200)
    c.call("unknown order", "GET", tpl, "/api/finance/orders/O-NOPE/audit", token=finance,
           expect=404)
    c.call("admin (wrong role)", "GET", tpl, f"/api/finance/orders/{order_id}/audit",
           token=admin, expect=403)
    c.call("no token", "GET", tpl, f"/api/finance/orders/{order_id}/audit", expect=401)
    tpl = "/api/finance/replay"
    columns = {"credit": "ReplayCreditRow", "stock": "ReplayStockRow",
               "pricing": "ReplayPricingRow", "orders": "ReplayOrderRow"}
    for model, schema_name in columns.items():
        wanted = list(spec.doc["components"]["schemas"][schema_name]["properties"])

        def rows_are(r, model=model, wanted=wanted):
            rows = r.json["rows"]
            if r.json["model"] != model or not rows:
                return [f"model {r.json['model']}, {len(rows)} rows"]
            return [] if all(list(row) == wanted for row in rows) else \
                [f"{model} rows are not {schema_name}"]
        c.call(f"model={model} at the head position", "GET", tpl, token=finance,
               query={"as_of": head, "model": model}, expect=200, extra=rows_are)

        def csv_is(r, wanted=wanted):
            first_line = r.text.split("\r\n")[0]
            return [] if first_line.split(",") == wanted else [f"header {first_line!r}"]
        c.call(f"model={model} as CSV (Accept: text/csv)", "GET", tpl, token=finance,
               query={"as_of": head, "model": model}, headers={"Accept": "text/csv"},
               expect=200, extra=csv_is)
    c.call("as_of an ISO 8601 instant, default model", "GET", tpl, token=finance,
           query={"as_of": some_instant}, expect=200,
           extra=lambda r: [] if r.json["as_of"] and r.json["model"] == "credit" else
           [f"as_of {r.json['as_of']}"])
    c.call("format=csv", "GET", tpl, token=finance, query={"as_of": head, "format": "csv"},
           expect=200)
    c.call("as_of missing", "GET", tpl, token=finance, query={"model": "credit"}, expect=400)
    c.call("as_of in the future", "GET", tpl, token=finance,
           query={"as_of": "2999-01-01T00:00:00Z"}, expect=400)
    c.call("unknown model", "GET", tpl, token=finance, query={"as_of": head, "model": "x"},
           expect=400)
    c.call("unknown parameter", "GET", tpl, token=finance, query={"as_of": head, "x": 1},
           expect=400)
    c.call("admin (wrong role)", "GET", tpl, token=admin, query={"as_of": head}, expect=403)
    c.call("no token", "GET", tpl, query={"as_of": head}, expect=401)

    # ---- config
    c.call("admin", "GET", "/api/admin/config", token=admin, expect=200,
           extra=lambda r: [] if len(r.json) == 11 else [f"{len(r.json)} keys"])
    c.call("finance (wrong role)", "GET", "/api/admin/config", token=finance, expect=403)
    c.call("no token", "GET", "/api/admin/config", expect=401)
    tpl = "/api/admin/config/{key}"
    path = "/api/admin/config/stock.sync_interval_s"
    c.call("admin", "GET", tpl, path, token=admin, expect=200)
    c.call("a decimal key", "GET", tpl, "/api/admin/config/erp.max_rps", token=admin,
           expect=200, extra=lambda r: [] if r.json["value"] == "2.00" else [r.json["value"]])
    c.call("unknown key", "GET", tpl, "/api/admin/config/no.such.key", token=admin,
           expect=404)
    c.call("finance (wrong role)", "GET", tpl, path, token=finance, expect=403)
    c.call("no token", "GET", tpl, path, expect=401)
    k = c.key()
    put = c.call("admin", "PUT", tpl, path, token=admin, key=k, body={"value": 600},
                 expect=200, extra=lambda r: [] if r.json["value"] == 600 and
                 r.json["version"] == 1 and r.json["updated_by"] == "admin" else [r.text])
    c.replay("admin", "PUT", tpl, put, path, token=admin, key=k, body={"value": 600})
    c.call("a decimal key (as in force: no change)", "PUT", tpl,
           "/api/admin/config/erp.max_rps", token=admin, key=c.key(), body={"value": "2.00"},
           expect=200, extra=lambda r: [] if r.json["value"] == "2.00" else [r.text])
    c.call("no Idempotency-Key", "PUT", tpl, path, token=admin, body={"value": 600},
           expect=400)
    c.call("unknown field", "PUT", tpl, path, token=admin, key=c.key(),
           body={"value": 600, "ttl": 1}, expect=400)
    c.call("value missing", "PUT", tpl, path, token=admin, key=c.key(), body={}, expect=400)
    c.call("out of range", "PUT", tpl, path, token=admin, key=c.key(), body={"value": 1},
           expect=422, extra=lambda r: [] if r.code() == "invalid_config_value" else [r.code()])
    c.call("wrong JSON type", "PUT", tpl, path, token=admin, key=c.key(), body={"value": True},
           expect=422)
    c.call("unknown key", "PUT", tpl, "/api/admin/config/no.such.key", token=admin,
           key=c.key(), body={"value": 1}, expect=422,
           extra=lambda r: [] if r.code() == "unknown_config_key" else [r.code()])
    c.call("finance (wrong role)", "PUT", tpl, path, token=finance, key=c.key(),
           body={"value": 600}, expect=403)
    c.call("no token", "PUT", tpl, path, key=c.key(), body={"value": 600}, expect=401)
    k = c.key()
    reset = c.call("admin", "DELETE", tpl, path, token=admin, key=k, expect=200,
                   extra=lambda r: [] if r.json["value"] == 300 else [r.text])
    c.replay("admin", "DELETE", tpl, reset, path, token=admin, key=k)
    c.call("no Idempotency-Key", "DELETE", tpl, path, token=admin, expect=400)
    c.call("a body field", "DELETE", tpl, path, token=admin, key=c.key(), body={"value": 1},
           expect=400)
    c.call("unknown key", "DELETE", tpl, "/api/admin/config/no.such.key", token=admin,
           key=c.key(), expect=422)
    c.call("reseller (wrong role)", "DELETE", tpl, path, token=reseller, key=c.key(),
           expect=403)
    c.call("no token", "DELETE", tpl, path, key=c.key(), expect=401)
    tpl = "/api/admin/config/{key}/history"
    c.call("finance", "GET", tpl, f"{path}/history", token=finance, expect=200,
           extra=lambda r: [] if [e["change"] for e in r.json] == ["set", "reset"] else
           [r.text[:200]])
    c.call("admin, never changed", "GET", tpl, "/api/admin/config/erp.max_rps/history",
           token=admin, expect=200, extra=lambda r: [] if r.json == [] else [r.text[:200]])
    c.call("unknown key", "GET", tpl, "/api/admin/config/no.such.key/history", token=admin,
           expect=404)
    c.call("reseller (wrong role)", "GET", tpl, f"{path}/history", token=reseller, expect=403)
    c.call("no token", "GET", tpl, f"{path}/history", expect=401)

    # ---- tiers
    tpl = "/api/admin/tiers/{tier}"
    path = "/api/admin/tiers/GOLD"
    terms = {"discount_bps": 1000, "loyalty_multiplier": "1.50"}  # The defaults: no change.
    k = c.key()
    tier = c.call("admin", "PUT", tpl, path, token=admin, key=k, body=terms, expect=200)
    c.replay("admin", "PUT", tpl, tier, path, token=admin, key=k, body=terms)
    c.call("unknown tier", "PUT", tpl, "/api/admin/tiers/gold", token=admin, key=c.key(),
           body=terms, expect=422,
           extra=lambda r: [] if r.code() == "unknown_tier" else [r.code()])
    c.call("discount out of range", "PUT", tpl, path, token=admin, key=c.key(),
           body={"discount_bps": 9001, "loyalty_multiplier": "1.50"}, expect=422)
    c.call("no Idempotency-Key", "PUT", tpl, path, token=admin, body=terms, expect=400)
    c.call("unknown field", "PUT", tpl, path, token=admin, key=c.key(),
           body=dict(terms, min_order=1), expect=400)
    c.call("finance (wrong role)", "PUT", tpl, path, token=finance, key=c.key(), body=terms,
           expect=403)
    c.call("no token", "PUT", tpl, path, key=c.key(), body=terms, expect=401)

    # ---- master data
    partner = {"partner_id": "P-OA-1", "name": "OpenAPI Test Store", "tier": "SILVER",
               "region": "ID-JK", "credit_limit": 1000000}
    tpl = "/api/admin/partners"
    k = c.key()
    made = c.call("admin", "POST", tpl, token=admin, key=k, body=partner, expect=201)
    c.replay("admin", "POST", tpl, made, token=admin, key=k, body=partner)
    c.call("already registered", "POST", tpl, token=admin, key=c.key(), body=partner,
           expect=409, extra=lambda r: [] if r.code() == "already_exists" else [r.code()])
    c.call("unknown tier", "POST", tpl, token=admin, key=c.key(),
           body=dict(partner, partner_id="P-OA-2", tier="IRON"), expect=422)
    c.call("field missing", "POST", tpl, token=admin, key=c.key(),
           body={"partner_id": "P-OA-3"}, expect=400)
    c.call("unknown field", "POST", tpl, token=admin, key=c.key(),
           body=dict(partner, partner_id="P-OA-4", discount=5), expect=400)
    c.call("no Idempotency-Key", "POST", tpl, token=admin, body=partner, expect=400)
    c.call("finance (wrong role)", "POST", tpl, token=finance, key=c.key(), body=partner,
           expect=403)
    c.call("no token", "POST", tpl, key=c.key(), body=partner, expect=401)
    tpl = "/api/admin/partners/{id}"
    path = "/api/admin/partners/P-OA-1"
    change = {"name": "OpenAPI Test Store 2", "tier": "GOLD", "credit_limit": 2000000}
    k = c.key()
    patched = c.call("admin", "PATCH", tpl, path, token=admin, key=k, body=change, expect=200,
                     extra=lambda r: [] if r.json["tier"] == "GOLD" and
                     r.json["region"] == "ID-JK" else [r.text])
    c.replay("admin", "PATCH", tpl, patched, path, token=admin, key=k, body=change)
    c.call("unknown partner", "PATCH", tpl, "/api/admin/partners/P-NOPE", token=admin,
           key=c.key(), body={"name": "x"}, expect=404)
    c.call("partner_id differs from the path", "PATCH", tpl, path, token=admin, key=c.key(),
           body={"partner_id": "P-OTHER"}, expect=400)
    c.call("unknown tier", "PATCH", tpl, path, token=admin, key=c.key(), body={"tier": "x"},
           expect=422)
    c.call("unknown field", "PATCH", tpl, path, token=admin, key=c.key(),
           body={"status": "x"}, expect=400)
    c.call("no Idempotency-Key", "PATCH", tpl, path, token=admin, body=change, expect=400)
    c.call("finance (wrong role)", "PATCH", tpl, path, token=finance, key=c.key(),
           body=change, expect=403)
    c.call("no token", "PATCH", tpl, path, key=c.key(), body=change, expect=401)
    product = {"sku": "OA-SKU-1", "name": "OpenAPI Serum", "base_price": 100000,
               "buffer_qty": 2}
    tpl = "/api/admin/products"
    k = c.key()
    made = c.call("admin", "POST", tpl, token=admin, key=k, body=product, expect=201)
    c.replay("admin", "POST", tpl, made, token=admin, key=k, body=product)
    c.call("without buffer_qty", "POST", tpl, token=admin, key=c.key(),
           body={"sku": "OA-SKU-2", "name": "OpenAPI Toner", "base_price": 5000}, expect=201,
           extra=lambda r: [] if r.json["buffer_qty"] == 0 else [r.text])
    c.call("already registered", "POST", tpl, token=admin, key=c.key(), body=product,
           expect=409)
    c.call("unknown field", "POST", tpl, token=admin, key=c.key(),
           body=dict(product, sku="OA-SKU-3", unit_price=1), expect=400)
    c.call("no Idempotency-Key", "POST", tpl, token=admin, body=product, expect=400)
    c.call("reseller (wrong role)", "POST", tpl, token=reseller, key=c.key(), body=product,
           expect=403)
    c.call("no token", "POST", tpl, key=c.key(), body=product, expect=401)
    tpl = "/api/admin/products/{sku}"
    path = "/api/admin/products/OA-SKU-1"
    k = c.key()
    repriced = c.call("admin", "PATCH", tpl, path, token=admin, key=k,
                      body={"base_price": 120000}, expect=200,
                      extra=lambda r: [] if r.json == dict(product, base_price=120000)
                      else [r.text])
    c.replay("admin", "PATCH", tpl, repriced, path, token=admin, key=k,
             body={"base_price": 120000})
    c.call("the price in force (nothing appended)", "PATCH", tpl, path, token=admin,
           key=c.key(), body={"sku": "OA-SKU-1", "base_price": 120000}, expect=200)
    c.call("unknown sku", "PATCH", tpl, "/api/admin/products/OA-NOPE", token=admin,
           key=c.key(), body={"base_price": 1}, expect=404)
    c.call("sku differs from the path", "PATCH", tpl, path, token=admin, key=c.key(),
           body={"sku": "OA-SKU-2", "base_price": 1}, expect=400)
    c.call("base_price missing", "PATCH", tpl, path, token=admin, key=c.key(), body={},
           expect=400)
    c.call("negative base_price", "PATCH", tpl, path, token=admin, key=c.key(),
           body={"base_price": -1}, expect=400)
    c.call("unknown field", "PATCH", tpl, path, token=admin, key=c.key(),
           body={"base_price": 1, "name": "x"}, expect=400)
    c.call("no Idempotency-Key", "PATCH", tpl, path, token=admin, body={"base_price": 1},
           expect=400)
    c.call("finance (wrong role)", "PATCH", tpl, path, token=finance, key=c.key(),
           body={"base_price": 1}, expect=403)
    c.call("no token", "PATCH", tpl, path, key=c.key(), body={"base_price": 1}, expect=401)
    warehouse = {"warehouse_id": "WH-OA", "sla_hours": {"ID-JK": 12, "ID-BA": 96}}
    tpl = "/api/admin/warehouses"
    k = c.key()
    made = c.call("admin", "POST", tpl, token=admin, key=k, body=warehouse, expect=201)
    c.replay("admin", "POST", tpl, made, token=admin, key=k, body=warehouse)
    c.call("already registered", "POST", tpl, token=admin, key=c.key(), body=warehouse,
           expect=409)
    c.call("SLA hours out of range", "POST", tpl, token=admin, key=c.key(),
           body={"warehouse_id": "WH-OA2", "sla_hours": {"ID-JK": 100000}}, expect=400)
    c.call("unknown field", "POST", tpl, token=admin, key=c.key(),
           body=dict(warehouse, warehouse_id="WH-OA3", city="x"), expect=400)
    c.call("no Idempotency-Key", "POST", tpl, token=admin, body=warehouse, expect=400)
    c.call("finance (wrong role)", "POST", tpl, token=finance, key=c.key(), body=warehouse,
           expect=403)
    c.call("no token", "POST", tpl, key=c.key(), body=warehouse, expect=401)

    # ---- projections
    tpl = "/api/admin/projections/{name}/rebuild"
    path = "/api/admin/projections/pricing/rebuild"
    c.call("admin, before any rebuild", "GET", "/api/admin/projections", token=admin,
           expect=200, extra=lambda r: [] if r.json["rebuild"] is None else ["a rebuild"])
    k = c.key()
    job = c.call("admin", "POST", tpl, path, token=admin, key=k, expect=202)
    c.replay("admin", "POST", tpl, job, path, token=admin, key=k)
    c.call("all, right after (202, or 409 while the first runs)", "POST", tpl,
           "/api/admin/projections/all/rebuild", token=admin, key=c.key(), expect={202, 409})
    c.call("unknown projection", "POST", tpl, "/api/admin/projections/nope/rebuild",
           token=admin, key=c.key(), expect=404)
    c.call("no Idempotency-Key", "POST", tpl, path, token=admin, expect=400)
    c.call("a body field", "POST", tpl, path, token=admin, key=c.key(), body={"x": 1},
           expect=400)
    c.call("finance (wrong role)", "POST", tpl, path, token=finance, key=c.key(), expect=403)
    c.call("no token", "POST", tpl, path, key=c.key(), expect=401)
    # A server's rebuild works a share of the time that falls as the machine gets busier
    # (down to a twentieth): beside another test on two cores even this small one can take
    # tens of seconds. (With 20 s this test failed once in a ctest -j2 run, 2026-11-27; its
    # output was not kept, and a rebuild not yet done is the likeliest cause.)
    deadline = time.time() + 90
    while time.time() < deadline:
        status = c.send("GET", "/api/admin/projections", admin)
        if status.json and status.json.get("rebuild") and \
                status.json["rebuild"]["state"] in ("done", "failed"):
            break
        time.sleep(0.1)
    c.call("admin, after the rebuild", "GET", "/api/admin/projections", token=admin,
           expect=200, extra=lambda r: [] if r.json["rebuild"] and
           r.json["rebuild"]["state"] == "done" and r.json["rebuild"]["checksums"] else
           [json.dumps(r.json["rebuild"])[:200]])
    c.call("finance (wrong role)", "GET", "/api/admin/projections", token=finance, expect=403)
    c.call("no token", "GET", "/api/admin/projections", expect=401)

    # ---- ERP
    tpl = "/api/admin/erp/sync"
    c.call("the ERP answers unusably (503)", "POST", tpl, token=admin, key=c.key(),
           expect=503, extra=lambda r: [] if r.code() == "erp_unavailable" else [r.code()])
    c.call("no Idempotency-Key", "POST", tpl, token=admin, expect=400)
    c.call("a body field", "POST", tpl, token=admin, key=c.key(), body={"stock": True},
           expect=400)
    c.call("finance (wrong role)", "POST", tpl, token=finance, key=c.key(), expect=403)
    c.call("no token", "POST", tpl, key=c.key(), expect=401)
    deadline = time.time() + 30
    letters = []
    while time.time() < deadline and not letters:
        status = c.send("GET", "/api/admin/erp", admin)
        letters = (status.json or {}).get("dead_letters", [])
        if not letters:
            time.sleep(0.2)
    c.call("admin, with a dead letter", "GET", "/api/admin/erp", token=admin, expect=200,
           extra=lambda r: [] if r.json["dead_letters"] else ["no dead letter within 30 s"])
    c.call("reseller (wrong role)", "GET", "/api/admin/erp", token=reseller, expect=403)
    c.call("no token", "GET", "/api/admin/erp", expect=401)
    sim(c, sim_port, {})  # The ERP behaves again.
    tpl = "/api/admin/erp/dead-letters/{id}/retry"
    letter = letters[0]["id"] if letters else 1
    path = f"/api/admin/erp/dead-letters/{letter}/retry"
    k = c.key()
    retried = c.call("admin", "POST", tpl, path, token=admin, key=k, expect=202,
                     extra=lambda r: [] if r.json["dead_letter_id"] == letter else [r.text])
    c.replay("admin", "POST", tpl, retried, path, token=admin, key=k)
    c.call("unknown dead letter", "POST", tpl, "/api/admin/erp/dead-letters/999999999/retry",
           token=admin, key=c.key(), expect=404)
    c.call("not a number", "POST", tpl, "/api/admin/erp/dead-letters/abc/retry", token=admin,
           key=c.key(), expect=404)
    c.call("no Idempotency-Key", "POST", tpl, path, token=admin, expect=400)
    c.call("a body field", "POST", tpl, path, token=admin, key=c.key(), body={"x": 1},
           expect=400)
    c.call("finance (wrong role)", "POST", tpl, path, token=finance, key=c.key(), expect=403)
    c.call("no token", "POST", tpl, path, key=c.key(), expect=401)
    tpl = "/api/admin/erp/sync"
    k = c.key()
    deadline = time.time() + 15
    synced = c.send("POST", tpl, admin, {"Idempotency-Key": k})
    while synced.status == 503 and time.time() < deadline:  # 503 is not stored: retry.
        time.sleep(0.2)
        synced = c.send("POST", tpl, admin, {"Idempotency-Key": k})
    synced = c.call("admin, the ERP up again", "POST", tpl, token=admin, key=k, expect=200,
                    reply=synced)
    c.replay("admin", "POST", tpl, synced, token=admin, key=k)

    # ---- routes
    oversized_bodies(c, spec, admin)
    static_routes(c, spec)
    probe_methods(c, spec, admin)
    c.coverage()


def sim(checker, sim_port, mode):
    """Sets the in-process simulated ERP's mode through its control surface (SPEC §7)."""
    reply = http_request(sim_port, "PUT", "/_sim/mode", {"Content-Type": "application/json"},
                         json.dumps(mode).encode())
    checker.check(f"simulated ERP mode set to {json.dumps(mode)}",
                  [] if reply.status == 200 else [f"{reply.status} {reply.text[:200]}"])


def mint(binary, *args):
    out = subprocess.run([binary, "token", *args], check=True, capture_output=True, text=True,
                         env=dict(os.environ, AUTH_JWT_SECRET=SECRET))
    return out.stdout.strip()


def main():
    args = sys.argv[1:]
    spec_path = os.path.join(ROOT, "openapi.yaml")
    if "--spec" in args:
        i = args.index("--spec")
        spec_path = args[i + 1]
        del args[i:i + 2]
    backend = "sqlite"
    if "--backend" in args:
        i = args.index("--backend")
        backend = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1 or backend not in ("sqlite", "postgresql"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    pg_admin = os.environ.get("OE_TEST_PG_ADMIN_URL", "")
    if backend == "postgresql" and not pg_admin:
        print("skip: OE_TEST_PG_ADMIN_URL is not set")
        return 0
    binary = os.path.abspath(args[0])
    started = time.time()
    spec = Spec(spec_path)
    work = tempfile.mkdtemp(prefix="openapi_test.")
    port, sim_port = free_port(), free_port()
    checker = Checker(spec, port)
    checker.check(f"{os.path.relpath(spec_path)} is OpenAPI 3.0.3",
                  [] if spec.doc.get("openapi") == "3.0.3" else [str(spec.doc.get("openapi"))])
    checker.check("every $ref resolves and every schema keyword is validated",
                  lint_schemas(spec))
    env = dict(os.environ, DATABASE_URL=f"sqlite://{work}/openapi.db", AUTH_JWT_SECRET=SECRET,
               PORT=str(port), ERP_SIM_PORT=str(sim_port),
               # The simulated ERP answers after a minute and the client gives up after 1 s,
               # so no order is ever accepted (they stay cancellable); retries and the circuit
               # are quick so a dead letter appears within seconds once the ERP misbehaves.
               ERP_SIM_LATENCY_MS="60000", ERP_TIMEOUT_MS="1000", ERP_RETRY_BASE_MS="1",
               ERP_CIRCUIT_OPEN_MS="100")
    env.pop("ERP_URL", None)
    env.pop("REDIS_URL", None)
    pg_db = ""
    if backend == "postgresql":
        # PostgreSQL, with the Redis config cache when the test Redis is up.
        pg_db = f"oe_openapi_{os.getpid()}"
        subprocess.run(["psql", "-q", pg_admin, "-c", f"CREATE DATABASE {pg_db}"], check=True)
        env["DATABASE_URL"] = pg_admin.rsplit("/", 1)[0] + "/" + pg_db
        if os.environ.get("OE_TEST_REDIS_URL"):
            env["REDIS_URL"] = os.environ["OE_TEST_REDIS_URL"]
    log = open(os.path.join(work, "serve.log"), "wb")
    server = subprocess.Popen([binary, "serve", "--demo"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        up = False
        while time.time() < deadline and server.poll() is None:
            try:
                up = http_request(port, "GET", "/health", {}, None).status == 200
            except OSError:
                up = False
            if up:
                break
            time.sleep(0.05)
        if not checker.check("orderengine serve --demo answers /health", [] if up else [
                f"not up (exit {server.poll()})"]):
            raise RuntimeError("the server did not start")
        tokens = {
            "reseller": mint(binary, "--role", "reseller", "--partner", "P-003"),
            "other": mint(binary, "--role", "reseller", "--partner", "P-001"),
            "ghost": mint(binary, "--role", "reseller", "--partner", "P-999"),
            "p004": mint(binary, "--role", "reseller", "--partner", "P-004"),
            "agent": mint(binary, "--role", "agent", "--partners", "P-001,P-002"),
            "admin": mint(binary, "--role", "admin"),
            "finance": mint(binary, "--role", "finance"),
        }
        for name, token in tokens.items():
            checker.role_of[token] = "reseller" if name in ("other", "ghost", "p004") else name
        run(checker, spec, binary, port, sim_port, tokens)
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            code = None
        checker.check("SIGTERM stops the server with exit code 0",
                      [] if code == 0 else [f"exit code {code}"])
    except Exception as e:  # noqa: BLE001 - report, then clean up below
        checker.fail("the test ran to the end", f"{type(e).__name__}: {e}")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
        if checker.failed:
            with open(os.path.join(work, "serve.log"), "rb") as f:
                tail = f.read().decode(errors="replace").splitlines()[-15:]
            print("# last lines of the server log:\n#   " + "\n#   ".join(tail))
        for name in os.listdir(work):
            os.unlink(os.path.join(work, name))
        os.rmdir(work)
        if pg_db:
            subprocess.run(["psql", "-q", pg_admin, "-c",
                            f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)"], check=False)
    operations = sum(1 for _ in spec.operations())
    print(f"# {backend}: {operations} documented operations; {checker.passed} passed, "
          f"{checker.failed} failed in {time.time() - started:.1f} s")
    return 0 if checker.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
