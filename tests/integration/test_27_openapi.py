"""docs/openapi.yaml against the daemons it describes:

1. it is a valid OpenAPI 3.1 document (openapi-spec-validator);
2. its routes are exactly the ones the daemons serve: each daemon's --print-routes plus
   the probes of every public listener, each on its listener, with the bearer token
   required on admin listeners, a public route open or needing a partner's access
   token (step 4 shows which: without one it is 401), and its servers naming them;
3. its onboarding request is schemas/onboarding.requested.avsc field by field;
4. real answers of running daemons are what it says (openapi-core validates each
   request and response): every intake route with its success and error answers, signed
   in as a partner, as another partner, and not at all, and every admin route with and
   without the token and with a partner's access token; each answer of a
   path several daemons serve is in the schema of the daemon that gave it; and every
   status code the document lists was seen, but for the few listed here that need an
   outage to happen; a request intake refuses by its rules (422) is one the document
   refuses too;
5. the request's rules in the document are intake's own, as GET /v1/form publishes them
   from its one table (services/intake/fields.c): each field's patterns and longest
   length, the counts' largest, the countries, regions and models. The comparison is
   shown to fail on a changed limit."""
import copy
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict

import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec

from harness import (BUILD, CONFIG, DEMO_DATA, ROOT, SERVICES, check, example, log, onboarding_id, run, secret,
                     tls_context, token, wait_for)

DOC = os.path.join(ROOT, "docs", "openapi.yaml")
AVRO_REQUEST = os.path.join(ROOT, "schemas", "onboarding.requested.avsc")
PROBES = ("/healthz", "/readyz", "/metrics")
# Fields whose Avro default (0) the front door's JSON reader does not apply: it applies
# only null and empty-array defaults (common/src/avro/json.c), so a JSON request must carry
# them and the document says so. Step 4 holds the daemon to it.
DEFAULT_NOT_APPLIED = {"users.cloud", "users.sat"}
# Fields the front door takes from the access token whatever the body says (the
# partner, and the submitter's email): a JSON request may leave them out, and the
# document says so. Step 4 holds the daemon to it.
FROM_TOKEN = {"partner_id", "submitted_by"}
# Fields whose Avro default the front door applies, but whose default value the rules
# refuse (an unanswered breach question): the document requires them, without it.
DEFAULT_REFUSED = {"breach_or_incident"}
# Answers the document lists that only an outage produces; everything else is seen.
NOT_REPRODUCED = {
    ("/healthz", "get"): {"503"},                           # a stalled event loop
    ("/readyz", "get"): {"503"},                            # database or broker away (integration.20)
    ("/v1/onboardings/{onboarding_id}", "get"): {"503"},    # the database failing the query
    ("/v1/partner", "get"): {"503"},
    ("/v1/onboardings", "get"): {"503"},
    ("/v1/customers", "get"): {"503"},
    ("/v1/customers/{customer_id}", "get"): {"503"},
    ("/v1/customers/{customer_id}/users", "post"): {"429", "503"},  # 429: the same limit as /v1/onboardings'
    ("/v1/admin/load", "post"): {"503"},
    ("/v1/pools/{partner_id}", "get"): {"503"},
    ("/v1/inventory", "get"): {"503"},
}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def load_doc():
    with open(DOC) as fh:
        return yaml.safe_load(fh)


def operations(doc):
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item, item[method]


def template(path):
    """A documented path as the daemons write their patterns: {} for a parameter."""
    return re.sub(r"\{[^}]+\}", "{}", path)


# ---- 2. the routes --------------------------------------------------------------

def routes_printed(ns, daemon):
    """A daemon's HTTP routes, as it prints them (--print-routes): "http GET /v1/form public"."""
    exe = os.path.join(BUILD, "services", daemon, f"lmp-{daemon}")
    out = subprocess.run([exe, "--print-routes"], env=ns.env(daemon), capture_output=True, text=True, timeout=30)
    check(out.returncode == 0, f"{daemon} --print-routes: {out.stderr}")
    return [line for line in out.stdout.splitlines() if line.startswith("http ")]


def check_routes(ns, doc):
    printed = set()
    for daemon in SERVICES:
        for line in routes_printed(ns, daemon):
            _, method, pattern, listener = line.split()
            printed.add((daemon, listener, method, pattern))
        for probe in PROBES:
            printed.add((daemon, "public", "GET", probe))
    check(len(printed) > 20, f"too few routes printed to compare: {printed}")

    documented = set()
    top = doc.get("security", [])
    for path, method, item, op in operations(doc):
        served = op.get("x-lmp-served-by")
        check(served, f"{method} {path}: no x-lmp-served-by")
        listeners = {s["listener"] for s in served}
        for s in served:
            documented.add((s["daemon"], s["listener"], method.upper(), template(path)))
        security = op.get("security", top)
        no_login = security == [] or {} in security
        admin = {"adminToken": []} in security
        partner = {"partnerToken": []} in security
        check(admin == ("admin" in listeners), f"{method} {path}: the bearer token {'not ' if not admin else ''}"
                                               f"required, yet served on {listeners}")
        # A public route is open or needs a partner's token (never both); live() holds
        # each to it: without a token, a partner's route is 401 and an open one is not.
        check((no_login or partner) == ("public" in listeners) and not (no_login and partner),
              f"{method} {path}: {'no ' if no_login else ''}login, {'a' if partner else 'no'} partner's token, "
              f"yet served on {listeners}")
        servers = {srv["description"].split(" (")[0] for srv in item.get("servers", doc["servers"])}
        want = {f"{s['daemon']}, {s['listener']} listener" for s in served}
        check(servers == want, f"{method} {path}: servers {servers}, served by {want}")
    check(documented == printed, f"documented, not served: {sorted(documented - printed)}; "
                                 f"served, not documented: {sorted(printed - documented)}")
    return len(printed)


# ---- 3. the request mirrors the Avro schema --------------------------------------

class Mirror:
    def __init__(self, doc):
        self.doc = doc

    def deref(self, s):
        """A schema with its $ref followed; keywords beside the $ref stay."""
        while "$ref" in s:
            target = self.doc
            for part in s["$ref"].lstrip("#/").split("/"):
                target = target[part]
            s = dict(target, **{k: v for k, v in s.items() if k != "$ref"})
        return s

    def same(self, avro, oas, where):
        oas = self.deref(oas)
        if isinstance(avro, list):
            branches = [b for b in avro if b != "null"]
            check("null" in avro and len(branches) == 1, f"{where}: a union other than null and one type")
            if "anyOf" in oas:
                alts = [self.deref(a) for a in oas["anyOf"]]
                check(len(alts) == 2 and {"type": "null"} in alts, f"{where}: {oas}")
                return self.same(branches[0], next(a for a in alts if a != {"type": "null"}), where)
            types = oas.get("type")
            check(isinstance(types, list) and "null" in types and len(types) == 2, f"{where}: not nullable: {oas}")
            return self.same(branches[0], dict(oas, type=next(t for t in types if t != "null")), where)
        if isinstance(avro, dict) and avro["type"] in ("string", "int", "long", "boolean"):
            avro = avro["type"]  # a logical type is carried as its primitive
        if isinstance(avro, str):
            want = {"string": ("string", None), "int": ("integer", "int32"), "long": ("integer", "int64"),
                    "boolean": ("boolean", None)}[avro]
            check(oas.get("type") == want[0] and oas.get("format") == want[1], f"{where}: {avro} as {oas}")
            return None
        kind = avro["type"]
        if kind == "enum":
            check(oas.get("enum") == avro["symbols"], f"{where}: enum {avro['symbols']} as {oas.get('enum')}")
        elif kind == "array":
            check(oas.get("type") == "array", f"{where}: array as {oas}")
            self.same(avro["items"], oas["items"], where + "[]")
        elif kind == "record":
            self.record(avro, oas, where)
        else:
            check(False, f"{where}: Avro type {kind} not expected in the request")
        return None

    def record(self, rec, oas, where):
        check(oas.get("type") == "object" and oas.get("additionalProperties") is False,
              f"{where or 'the request'}: not a closed object (unknown fields are refused)")
        names = [f["name"] for f in rec["fields"]]
        check(list(oas["properties"]) == names, f"{where}: fields {names}, documented {list(oas['properties'])}")
        path = lambda f: f"{where}.{f['name']}".lstrip(".")  # noqa: E731
        required = {f["name"] for f in rec["fields"] if ("default" not in f or path(f) in DEFAULT_NOT_APPLIED or
                                                       path(f) in DEFAULT_REFUSED) and path(f) not in FROM_TOKEN}
        check(set(oas.get("required", [])) == required, f"{where}: required {sorted(required)}, "
                                                          f"documented {sorted(oas.get('required', []))}")
        for f in rec["fields"]:
            prop = oas["properties"][f["name"]]
            if path(f) in FROM_TOKEN and prop.get("type") == ["string", "null"]:
                prop = dict(prop, type="string")  # the token's whatever the body says, null too
            self.same(f["type"], prop, path(f))
            if "default" in f and path(f) not in DEFAULT_NOT_APPLIED | DEFAULT_REFUSED:
                check(prop.get("default", "absent") == f["default"], f"{path(f)}: default {f['default']!r}, "
                                                                     f"documented {prop.get('default', 'absent')!r}")


def check_mirror(doc):
    with open(AVRO_REQUEST) as fh:
        avro = json.load(fh)
    m = Mirror(doc)
    m.record(avro, m.deref({"$ref": "#/components/schemas/OnboardingRequest"}), "")
    # The comparison itself must be able to fail: a field missing from the document.
    broken = copy.deepcopy(doc)
    del broken["components"]["schemas"]["Address"]["properties"]["phone"]
    try:
        Mirror(broken).record(avro, Mirror(broken).deref({"$ref": "#/components/schemas/OnboardingRequest"}), "")
    except Exception:  # noqa: BLE001 - any failure is the point
        pass
    else:
        check(False, "the mirror check did not notice a missing field")


# ---- 4. real answers ------------------------------------------------------------

def short(e):
    """openapi-core's error and its cause, cut: they quote the whole body."""
    cause = getattr(e, "__cause__", None) or ""
    return f"{e!r}"[:300] + (f" because {cause!r}"[:600] if cause else "")


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


class Checker:
    """Sends real requests and validates each request and answer with openapi-core."""

    def __init__(self, doc):
        self.doc = doc
        self.api = OpenAPI.from_dict(copy.deepcopy(doc))
        self.seen = defaultdict(set)  # (path, method) -> statuses
        self.count = 0

    def operation(self, path, method):
        for key, m, _, op in operations(self.doc):
            if m == method.lower() and re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(key)), path):
                return key, op
        check(False, f"no documented operation for {method} {path}")
        return None

    def schema_check(self, name, instance, what):
        root = {"$ref": f"#/components/schemas/{name}", "components": self.doc["components"]}
        errors = list(OAS31Validator(root).iter_errors(instance))
        check(not errors, f"{what}: not a {name}: {errors[0].message if errors else ''}")

    def __call__(self, daemon, listener, url, method="GET", body=None, ctype="application/json", token=None,
                 want=None, valid_request=True, headers=None):
        h = dict(headers or {})
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        if data is not None and ctype:
            h["Content-Type"] = ctype
        if token:
            h["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=90, context=tls_context(url)) as r:
                a = Answer(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            a = Answer(e.code, dict(e.headers), e.read())
        what = f"{daemon} {listener}: {method} {url} -> {a.status}"
        check(want is None or a.status == want, f"{what}, not {want}: {a.body[:300]!r}")

        u = urllib.parse.urlsplit(url)
        mock = MockRequest(f"{u.scheme}://{u.netloc}", method, u.path, args=dict(urllib.parse.parse_qsl(u.query)),
                           headers=h, data=data, content_type=ctype or "")
        if a.status == 422:
            # What intake refuses by the form's rules the document refuses too, unless
            # the rule is one no schema can say (named in the document's descriptions).
            try:
                self.api.validate_request(mock)
            except Exception:  # noqa: BLE001 - refused, as it should be
                pass
            else:
                check(valid_request == "unsayable", f"{what}: intake refused a request the document takes: "
                                                    f"{a.body[:300]!r}")
        elif valid_request:
            try:
                self.api.validate_request(mock)
            except Exception as e:  # noqa: BLE001 - openapi-core's errors name the problem
                check(False, f"{what}: the request is not what the document says: {short(e)}")
        try:
            self.api.validate_response(mock, MockResponse(a.body, status_code=a.status, headers=a.headers,
                                                          content_type=a.headers.get("Content-Type", "")))
        except Exception as e:  # noqa: BLE001
            check(False, f"{what}: the answer is not what the document says: {short(e)}: {a.body[:300]!r}")

        key, op = self.operation(u.path, method)
        self.seen[(key, method.lower())].add(str(a.status))
        self.count += 1
        served = [s for s in op["x-lmp-served-by"] if s["daemon"] == daemon and s["listener"] == listener]
        check(served, f"{what}: the document does not say {daemon} serves it on its {listener} listener")
        # A path several daemons serve: the answer is the schema of the one that gave it.
        if a.status == 200 and "response" in served[0]:
            self.schema_check(served[0]["response"], a.json(), what)
        if valid_request and "request" in served[0]:
            self.schema_check(served[0]["request"], json.loads(data), what)
        return a

    def must_refuse(self, url, method, status, body, what):
        """The validation itself must be able to fail: an answer the document does not allow."""
        u = urllib.parse.urlsplit(url)
        mock = MockRequest(f"{u.scheme}://{u.netloc}", method, u.path)
        try:
            self.api.validate_response(mock, MockResponse(json.dumps(body).encode(), status_code=status))
        except Exception:  # noqa: BLE001
            return
        check(False, f"openapi-core took a wrong answer: {what}")


def partner_routes(doc):
    """The public operations that need a partner's access token."""
    return {(path, method) for path, method, _, op in operations(doc) if {"partnerToken": []} in op.get("security", [])
            and any(s["listener"] == "public" for s in op["x-lmp-served-by"])}


def live(ns, doc):
    ok = Checker(doc)
    admin_token = secret("admin-token")
    nora, erin = token("partner-northwind"), token("partner-eastwind")
    door = ns.http["intake"]
    adm = ns.admin

    # Probes on every daemon's public listener.
    for daemon in SERVICES:
        for probe in PROBES:
            ok(daemon, "public", ns.http[daemon] + probe, want=200)

    # The page and its files.
    ok("intake", "public", door + "/", want=200)
    for f in sorted(os.listdir(os.path.join(ROOT, "services", "intake", "web"))):
        ok("intake", "public", f"{door}/form/{f}", want=200)
    ok("intake", "public", door + "/form/no-such-file.png", want=404)
    ok("intake", "public", door + "/v1/form", want=200)

    # Submissions: taken, repeated, conflicting, refused, malformed.
    virtual = example("virtual-core.json")
    a = ok("intake", "public", door + "/v1/onboardings", "POST", virtual, token=nora, want=202,
           headers={"traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"})
    check(a.headers["Location"] == a.json()["status_url"], a.headers)
    vid = onboarding_id(virtual)
    check(a.json()["onboarding_id"] == vid, a.json())
    # The status: a long poll to the outcome, a bad wait, an unknown id, another partner's.
    a = ok("intake", "public", f"{door}/v1/onboardings/{vid}?wait=60", token=nora, want=200)
    check(a.json()["status"] == "confirmed", a.json()["status"])
    ok("intake", "public", f"{door}/v1/onboardings/{vid}?wait=abc", token=nora, want=400, valid_request=False)
    ok("intake", "public", f"{door}/v1/onboardings/{uuid.uuid4()}", token=nora, want=404)
    ok("intake", "public", f"{door}/v1/onboardings/{vid}", token=erin, want=404)
    # Once intake has recorded a request, a repeat is 202 and other content under its id 409.
    ok("intake", "public", door + "/v1/onboardings", "POST", virtual, token=nora, want=202)
    ok("intake", "public", door + "/v1/onboardings", "POST", dict(virtual, users={"tier": 9, "cloud": 0, "sat": 0}),
       token=nora, want=409)
    ok("intake", "public", door + "/v1/onboardings", "POST", example("rejected-breach.json"), token=nora, want=422)
    ok("intake", "public", door + "/v1/onboardings", "POST", b"{not json", token=nora, want=400, valid_request=False)
    ok("intake", "public", door + "/v1/onboardings", "POST", b"a=b", ctype="application/x-www-form-urlencoded",
       token=nora, want=415, valid_request=False)
    ok("intake", "public", door + "/v1/onboardings", "POST", b"{" + b" " * (300 * 1024) + b"}", token=nora,
       want=413, valid_request=False)
    # What the document says of users.cloud and users.sat: required, though Avro has a default.
    no_cloud = example("virtual-core.json", users={"tier": 8})
    a = ok("intake", "public", door + "/v1/onboardings", "POST", no_cloud, token=nora, want=400, valid_request=False)
    check("users.cloud" in a.json()["error"], f"the front door took a request without users.cloud: {a.body!r}")
    # The partner and the submitter come from the token: a request may leave them out.
    anonymous = {k: v for k, v in example("virtual-core.json").items() if k not in FROM_TOKEN}
    a = ok("intake", "public", door + "/v1/onboardings", "POST", anonymous, token=nora, want=202)
    check(a.json()["onboarding_id"] == onboarding_id("partner-northwind", anonymous["request_id"]), a.json())
    # Signed in, for one's own partner only: a body naming another partner is 403.
    ok("intake", "public", door + "/v1/onboardings", "POST",
       example("virtual-core.json", partner_id="partner-eastwind"), token=nora, want=403)
    # Without a token, or with one that is not an access token: 401, on every route
    # that needs a partner's token (the request itself is not what the document says).
    for path, method in sorted(partner_routes(doc)):
        url = door + path.replace("{onboarding_id}", vid)
        body = example("virtual-core.json") if method == "post" else None
        for bad in (None, "not-an-access-token"):
            a = ok("intake", "public", url, method.upper(), body, token=bad, want=401, valid_request=False)
            check(a.headers.get("WWW-Authenticate", "").startswith('Bearer realm="lmp"'), a.headers)

    physical = example("physical-complete.json")
    ok("intake", "public", door + "/v1/onboardings", "POST", physical, token=nora, want=202)
    oid = onboarding_id(physical)
    a = ok("intake", "public", f"{door}/v1/onboardings/{oid}?wait=60", token=nora, want=200)
    check(a.json()["status"] == "confirmed" and len(a.json()["shipments"]) == 2, a.json()["status"])
    ok.must_refuse(f"{door}/v1/onboardings/{oid}", "GET", 200,
                   dict(a.json(), status="teleported"), "a status no onboarding has")

    # A broker that will not take the request: 503. This intake speaks as the warehouse,
    # which may not write requests (as integration.25 does).
    with open(os.path.join(CONFIG, "intake.conf")) as fh:
        text = fh.read().replace("kafka-lmp-intake.", "kafka-warehouse.")
    conf = os.path.join(BUILD, "Testing", f"{ns.db}-warehouse-intake.conf")
    with open(conf, "w") as fh:
        fh.write(text)
    p = ns.start("intake", wait_ready=False, LMP_CONFIG=conf, LMP_KAFKA_GROUP_ID="openapi-" + ns.prefix)
    wait_for("the second intake listening", lambda: urllib.request.urlopen(p.http + "/v1/form", timeout=5,
                                                                          context=tls_context(p.http)).status)
    a = ok("intake", "public", p.http + "/v1/onboardings", "POST", example("virtual-core.json"), token=nora, want=503)

    # Past the partner's allowance of submissions: 429 with Retry-After.
    p = ns.start("intake", LMP_INTAKE_SUBMISSIONS_PER_PARTNER_PER_MIN=1, LMP_KAFKA_GROUP_ID="limit-" + ns.prefix)
    ok("intake", "public", p.http + "/v1/onboardings", "POST", example("virtual-core.json"), token=nora, want=202)
    ok("intake", "public", p.http + "/v1/onboardings", "POST", example("virtual-core.json"), token=nora, want=429)

    # Admin routes: with the token, without it, and their errors.
    with open(DEMO_DATA) as fh:
        demo = json.load(fh)
    operator = token("operator")
    # The partner's view: one's own, once allocation's balance reached intake; an
    # account that acts for no partner is 403; no token 401.
    wait_for("Northwind's licenses in its view", lambda: ok("intake", "public", door + "/v1/partner", token=nora,
                                                            want=200).json()["licenses"], timeout=60)
    ok("intake", "public", door + "/v1/partner", token=operator, want=403)
    ok("intake", "public", door + "/v1/partner", want=401, valid_request=False)
    # The partner's lists, a page at a time; a bad query 400; the page's own addresses.
    a = ok("intake", "public", door + "/v1/onboardings?limit=1", token=nora, want=200)
    check(len(a.json()["onboardings"]) == 1 and a.json()["next_cursor"], a.json())
    ok("intake", "public", door + "/v1/onboardings?limit=1&cursor=" + urllib.parse.quote(a.json()["next_cursor"]),
       token=nora, want=200)
    ok("intake", "public", door + "/v1/onboardings?status=confirmed", token=nora, want=200)
    ok("intake", "public", door + "/v1/onboardings?limit=0", token=nora, want=400, valid_request=False)
    ok("intake", "public", door + "/v1/onboardings", want=401, valid_request=False)
    ok("intake", "public", door + "/v1/onboardings", token=operator, want=403)
    a = ok("intake", "public", door + "/v1/customers", token=nora, want=200)
    check(a.json()["customers"], a.json())
    cust = next(c["customer_id"] for c in a.json()["customers"] if c["status"] == "active")
    # Users added to an account: taken, refused by a rule, malformed, not one's own.
    more = door + f"/v1/customers/{cust}/users"
    again = str(uuid.uuid4())
    added = ok("intake", "public", more, "POST", {"request_id": again, "users": {"tier": 1}}, token=nora,
               want=202).json()["addition_id"]
    # Once intake has recorded it, the same id for other users is a conflict.
    wait_for("the addition recorded", lambda: ns.sql("SELECT count(*) FROM user_additions WHERE addition_id = %s",
                                                     added)[0][0] == 1)
    ok("intake", "public", more, "POST", {"request_id": again, "users": {"tier": 2}}, token=nora, want=409)
    ok("intake", "public", more, "POST", {"request_id": str(uuid.uuid4()), "users": {"tier": 0}}, token=nora, want=422)
    ok("intake", "public", more, "POST", {"request_id": str(uuid.uuid4()), "users": {"tier": "x"}}, token=nora,
       want=400, valid_request=False)
    ok("intake", "public", more, "POST", {"request_id": str(uuid.uuid4()), "users": {"tier": 1}}, want=401,
       valid_request=False)
    ok("intake", "public", more, "POST", {"request_id": str(uuid.uuid4()), "users": {"tier": 1}}, token=operator,
       want=403)
    ok("intake", "public", door + f"/v1/customers/{uuid.uuid4()}/users", "POST",
       {"request_id": str(uuid.uuid4()), "users": {"tier": 1}}, token=nora, want=404)
    ok("intake", "public", more, "POST", {"request_id": "x" * 20000, "users": {"tier": 1}}, token=nora, want=413,
       valid_request=False)
    ok("intake", "public", more, "POST", b"tier=1", ctype="text/plain", token=nora, want=415, valid_request=False)
    # Hostile text in the request: answered at its field, nothing sent.
    a = ok("intake", "public", more, "POST", {"request_id": str(uuid.uuid4()) + "\r\nx", "users": {"tier": 1}},
           token=nora, want=422)
    check(a.json()["reasons"][0]["field"] == "request_id", a.json())
    ok("intake", "public", door + f"/v1/customers/{cust}", token=nora, want=200)
    ok("intake", "public", door + f"/v1/customers/{cust}", token=erin, want=404)
    ok("intake", "public", door + f"/v1/customers/{cust}", want=401, valid_request=False)
    ok("intake", "public", door + f"/customers/{cust}", want=200)
    ok("intake", "public", door + "/v1/customers?status=released", token=nora, want=200)
    ok("intake", "public", door + "/v1/customers?status=lost", token=nora, want=400, valid_request=False)
    ok("intake", "public", door + "/v1/customers", want=401, valid_request=False)
    ok("intake", "public", door + "/v1/customers", token=operator, want=403)
    for page in ("/onboardings", f"/onboardings/{oid}", "/customers"):
        ok("intake", "public", door + page, want=200)
    # An address that names no id is no page, and a path that is not text no request.
    for page in ("/onboardings/not-an-id", "/customers/not-an-id"):
        ok("intake", "public", door + page, want=404, valid_request=False)
    for page in ("/onboardings/%07", "/customers/%07", "/form/%07"):
        ok("intake", "public", door + page, want=400, valid_request=False)
    ok("intake", "public", door + "/v1/customers/%07", token=nora, want=400, valid_request=False)
    for daemon in ("allocation", "appliance-fulfilment", "shipping"):
        ok(daemon, "admin", adm[daemon] + "/v1/admin/load", "POST", demo[daemon], token=admin_token, want=200)
        ok(daemon, "admin", adm[daemon] + "/v1/admin/load", "POST", demo[daemon], token=operator, want=200)
        ok(daemon, "admin", adm[daemon] + "/v1/admin/load", "POST", demo[daemon], want=401, valid_request=False)
        ok(daemon, "admin", adm[daemon] + "/v1/admin/load", "POST", demo[daemon], token=nora, want=403)
    ok("allocation", "admin", adm["allocation"] + "/v1/admin/load", "POST", {"partners": [{"partner_id": "bad id"}]},
       token=admin_token, want=400, valid_request=False)
    ok("shipping", "admin", adm["shipping"] + "/v1/admin/load", "POST", {"partner_addresses": [{}]}, token=admin_token,
       want=400, valid_request=False)
    ok("appliance-fulfilment", "admin", adm["appliance-fulfilment"] + "/v1/admin/load", "POST",
       {"skus": [{"sku": "S" * 70}]}, token=admin_token, want=400, valid_request=False)
    ok("allocation", "admin", adm["allocation"] + "/v1/admin/load", "POST",
       b'{"partners": [' + b" " * (1100 * 1024) + b"]}", token=admin_token, want=413, valid_request=False)
    a = ok("allocation", "admin", adm["allocation"] + "/v1/pools/partner-northwind", token=admin_token, want=200)
    check({x["product"] for x in a.json()} >= {"MDR_CORE", "MDR_COMPLETE"}, a.json())
    ok("allocation", "admin", adm["allocation"] + "/v1/pools/partner-nobody", token=admin_token, want=404)
    ok("allocation", "admin", adm["allocation"] + "/v1/pools/partner-northwind", want=401, valid_request=False)
    ok("allocation", "admin", adm["allocation"] + "/v1/pools/partner-northwind", token=nora, want=403)
    a = ok("appliance-fulfilment", "admin", adm["appliance-fulfilment"] + "/v1/inventory", token=admin_token, want=200)
    check(any(x["reserved"] >= 2 for x in a.json()), f"the physical onboarding's units: {a.json()}")
    ok("appliance-fulfilment", "admin", adm["appliance-fulfilment"] + "/v1/inventory", want=401, valid_request=False)
    ok("appliance-fulfilment", "admin", adm["appliance-fulfilment"] + "/v1/inventory", token=nora, want=403)
    # intake's admin listener answers any partner's onboarding, for operators only.
    for t in (admin_token, operator):
        a = ok("intake", "admin", f"{adm['intake']}/v1/onboardings/{oid}", token=t, want=200)
        check(a.json()["status"] == "confirmed", a.json()["status"])
    ok("intake", "admin", f"{adm['intake']}/v1/onboardings/{oid}", token=nora, want=403)
    for daemon in ("intake", "allocation", "shipping", "notifier"):
        ok(daemon, "admin", f"{adm[daemon]}/v1/onboardings/{oid}", token=admin_token, want=200)
        ok(daemon, "admin", f"{adm[daemon]}/v1/onboardings/{uuid.uuid4()}", token=admin_token, want=404)
        ok(daemon, "admin", f"{adm[daemon]}/v1/onboardings/{oid}", token="not-the-token-at-all", want=401)

    # Every documented answer was seen, but for those only an outage gives.
    for path, method, _, op in operations(doc):
        documented = set(op["responses"])
        missing = documented - ok.seen[(path, method)]
        check(missing == NOT_REPRODUCED.get((path, method), set()),
              f"{method} {path}: documented answers {sorted(missing)} not seen (seen {sorted(ok.seen[(path, method)])})")
    return ok.count


# ---- 5. one source for the request's rules -------------------------------------------

WS = "[\t\n\v\f\r ]*"


def length_pattern(n, required):
    """A text of 1 (0 when optional) to n printable characters once trimmed, in the
    document's words (see the comment above OnboardingRequest)."""
    core = f"[^\x00-\x20\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]{{0,{n - 2}}}[^\x00-\x20\x7f-\x9f])?"
    return f"^{WS}{core if required else f'({core})?'}{WS}$"


def node_at(doc, path):
    """The document's schema of a request field path ("deployment.addresses[].city")."""
    m = Mirror(doc)
    node = m.deref({"$ref": "#/components/schemas/OnboardingRequest"})
    for part in path.split("."):
        node = m.deref(node["properties"][part.removesuffix("[]")])
        if "anyOf" in node:
            node = m.deref(next(a for a in node["anyOf"] if a != {"type": "null"}))
        if part.endswith("[]"):
            node = m.deref(node["items"])
    return node


def doc_rules(doc, form):
    """What differs between the document's request rules and GET /v1/form's answer."""
    out = []
    for rule in form["fields"]:
        if not rule["patterns"] and "max_length" not in rule and rule.get("one_of") is None:
            continue
        node = node_at(doc, rule["field"])
        have = [node["pattern"]] if "pattern" in node else [a["pattern"] for a in node.get("allOf", [])]
        optional = not rule["required"]
        want = [f"^{WS}$|{p}" if optional else p for p in rule["patterns"]]
        if "max_length" in rule and rule.get("one_of") is None:
            want.append(length_pattern(rule["max_length"], rule["required"]))
        if rule.get("one_of") == "countries":
            have, want = node.get("enum"), form["countries"]
        if have != want:
            out.append(f"{rule['field']}: documented {have}, intake {want}")
    counts = node_at(doc, "users")["properties"]
    for which in ("tier", "cloud", "sat"):
        if counts[which]["maximum"] != form["max_users"]:
            out.append(f"users.{which}: documented at most {counts[which]['maximum']}, intake {form['max_users']}")
    virtual = node_at(doc, "deployment")["allOf"][0]["then"]["properties"]["hosting_region"]["enum"]
    if virtual != form["hosting_regions"]:
        out.append(f"hosting regions: documented {virtual}, intake {form['hosting_regions']}")
    skus = node_at(doc, "deployment.appliances[].sku")["enum"]
    if skus != form["appliance_skus"]:
        out.append(f"appliance SKUs: documented {skus}, intake {form['appliance_skus']}")
    return out


def check_one_source(ns, doc):
    url = ns.http["intake"] + "/v1/form"
    with urllib.request.urlopen(url, timeout=30, context=tls_context(url)) as r:
        form = json.load(r)
    drift = doc_rules(doc, form)
    check(not drift, "the document's rules are not intake's: " + "; ".join(drift))
    # The comparison can fail: intake with a longer legal name than the document says.
    longer = copy.deepcopy(form)
    next(r for r in longer["fields"] if r["field"] == "customer.legal_name")["max_length"] += 1
    check(any("customer.legal_name" in d for d in doc_rules(doc, longer)), "a changed limit went unnoticed")
    # And the countries: a code missing from the document is noticed.
    fewer = copy.deepcopy(form)
    fewer["countries"].append("XK")
    check(any("country" in d for d in doc_rules(doc, fewer)), "a country intake takes went unnoticed")
    return sum(1 for r in form["fields"] if r["patterns"] or "max_length" in r or r.get("one_of"))


def test_openapi(ns):
    doc = load_doc()
    validate_spec(copy.deepcopy(doc))
    log(f"{DOC}: a valid OpenAPI {doc['openapi']} document, {len(doc['paths'])} paths")
    n = check_routes(ns, doc)
    log(f"the document's routes are the {n} the daemons serve, each on its listener with its login")
    check_mirror(doc)
    log("the onboarding request mirrors schemas/onboarding.requested.avsc")
    ns.start_all()
    n = live(ns, doc)
    log(f"{n} real requests and answers are what the document says")
    n = check_one_source(ns, doc)
    log(f"the document's {n} request rules are the ones GET /v1/form publishes")


if __name__ == "__main__":
    os.makedirs(os.path.join(BUILD, "Testing"), exist_ok=True)
    sys.exit(run(test_openapi))
