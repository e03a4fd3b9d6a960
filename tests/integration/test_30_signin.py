"""Signing in, against the stack's real Keycloak: the front door acts only for the
partner a verified access token names. A realm of the test's own, whose signing key
the test holds, lets it write tokens the realm's published keys verify, so every
claim check is tried alone: no token, expired, not yet valid, wrong issuer, wrong
audience, `alg: none`, HS256 keyed with the realm's public key, a payload altered
after signing, an unknown key id, a token of another realm. Each is 401 with a
Bearer challenge and publishes nothing. Then: one partner's token on another's
onboarding is 404, exactly as an unknown id; a body naming another partner is 403;
two partners may use the same request id without meeting; submissions past a
partner's rate get 429 with Retry-After; operators' tokens open the admin routes and
are audited by name; a new signing key in the realm is followed without a restart;
and with the identity provider stopped, a token the cached keys do not cover is 503,
never a pass. Runs alone: it stops the shared identity provider."""
import base64
import copy
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from harness import (ISSUER, ROOT, SECRETS, SECURED, STACK_DIR, _ssl_context, check, example, log, onboarding_id,
                     run, secret, tls_context, token_response, wait_for, with_retries)

KC_BASE = ISSUER.rsplit("/realms/", 1)[0]


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def call(url, method="GET", body=None, token=None, raw_auth=None, timeout=30):
    h = {}
    if body is not None:
        h["Content-Type"] = "application/json"
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if raw_auth is not None:
        h["Authorization"] = raw_auth
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=tls_context(url)) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


# ---- Keycloak's admin API, as the stack's bootstrap admin ---------------------------

def kc_admin_token():
    return token_response(secret("keycloak-admin.username"), secret("keycloak-admin.password"),
                          client_id="admin-cli", issuer=f"{KC_BASE}/realms/master")["access_token"]


def kc(method, path, body=None):
    h = {"Authorization": f"Bearer {kc_admin_token()}"}
    if body is not None:
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(f"{KC_BASE}/admin{path}", data=None if body is None else json.dumps(body).encode(),
                                 method=method, headers=h)
    return with_retries(lambda: _answer(req))


def _answer(req):
    try:
        with urllib.request.urlopen(req, timeout=60, context=_ssl_context()) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        if e.code >= 500:
            raise
        return e.code, e.read().decode()


# ---- keys the test holds --------------------------------------------------------------

class Key:
    """An RSA key made with openssl; signs RS256 (PKCS #1 v1.5, SHA-256) with openssl."""

    def __init__(self, folder, name):
        self.path = os.path.join(folder, name + ".pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                        self.path], check=True, capture_output=True)
        self.pem = open(self.path).read()
        self.public_pem = subprocess.run(["openssl", "pkey", "-in", self.path, "-pubout"], check=True,
                                         capture_output=True, text=True).stdout

    def sign(self, data):
        return subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.path], input=data, check=True,
                              capture_output=True).stdout


def jwt(header, claims, key=None, signature=None):
    signing_input = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(claims).encode())}"
    sig = signature if signature is not None else key.sign(signing_input.encode())
    return f"{signing_input}.{b64u(sig)}"


def parts(token):
    h, c, s = token.split(".")
    return json.loads(unb64u(h)), json.loads(unb64u(c)), s


def key_component(key, priority):
    """The test's key as the realm's RSA key provider (as in a realm's export; a
    component created alone also names its type and realm)."""
    return {"name": f"test-key-{priority}", "providerId": "rsa",
            "config": {"priority": [str(priority)], "enabled": ["true"], "active": ["true"], "algorithm": ["RS256"],
                       "privateKey": [key.pem]}}


def make_realm(tag, key):
    """A realm of the test's own, from the stack's realm file: two partner users and an
    operator with passwords, and the test's key as its signing key."""
    with open(os.path.join(ROOT, "deploy", "keycloak", "realm-lmp.json")) as fh:
        realm = json.load(fh)
    realm["realm"] = realm["id"] = f"lmp-t{tag}"
    realm.pop("displayName", None)
    users = {"north": "partner-northwind", "east": "partner-eastwind"}
    password = uuid.uuid4().hex
    realm["users"] = [{"username": u, "enabled": True, "email": f"{u}@{p}.example", "emailVerified": True,
                       "firstName": u, "lastName": "Tester", "attributes": {"partner_id": [p]},
                       "credentials": [{"type": "password", "value": password, "temporary": False}]}
                      for u, p in users.items()]
    realm["users"].append({"username": "ops", "enabled": True, "email": "ops@lmp.example", "emailVerified": True,
                           "firstName": "Ops", "lastName": "Tester", "realmRoles": ["operator"],
                           "credentials": [{"type": "password", "value": password, "temporary": False}]})
    comps = realm.setdefault("components", {})
    comps.setdefault("org.keycloak.keys.KeyProvider", []).append(key_component(key, 1000))
    code, body = kc("POST", "/realms", realm)
    check(code == 201, f"creating the test realm: {code} {body}")
    return f"{KC_BASE}/realms/{realm['realm']}", password


def test_signin(ns):
    check(SECURED, "the stack runs secured")
    tag = uuid.uuid4().hex[:8]
    folder = tempfile.mkdtemp(prefix="lmp-signin-")
    key1, stranger = Key(folder, "realm-key"), Key(folder, "stranger")
    issuer, password = make_realm(tag, key1)
    try:
        run_checks(ns, issuer, password, key1, stranger)
    finally:
        kc("DELETE", f"/realms/lmp-t{tag}")


def run_checks(ns, issuer, password, key1, stranger):
    settings = dict(LMP_OIDC_ISSUER=issuer, LMP_OIDC_JWKS_REFETCH_S=1, LMP_OIDC_CLOCK_SKEW_S=5)
    p = ns.start("intake", **settings)
    door = p.http + "/v1/onboardings"
    north = token_response("north", password, issuer=issuer)["access_token"]
    east = token_response("east", password, issuer=issuer)["access_token"]
    header, claims, signature = parts(north)
    check(claims["partner_id"] == "partner-northwind" and "lmp-onboarding" in (
        claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]), claims)
    log(f"the realm signs with kid {header['kid']}; claims: iss {claims['iss']}, aud {claims['aud']}")
    accepted = []

    def post(token, req=None, expect=202, **kw):
        req = req or example("virtual-core.json")
        code, h, body = call(door, "POST", req, token=token, **kw)
        check(code == expect, f"expected {expect}, got {code} {body}")
        if code == 202:
            accepted.append(onboarding_id(req))
            check(json.loads(body)["onboarding_id"] == onboarding_id(req), body)
        return req, h, body

    # The controls: the realm's own token, and one the test signs with the realm's key
    # and the same claims, are both taken; so each refusal below is for its one change.
    post(north)
    forged = jwt(header, claims, key1)
    post(forged)

    now = int(time.time())
    alg_none = jwt({"alg": "none", "typ": "JWT", "kid": header["kid"]}, claims, signature=b"")
    hs_input = f"{b64u(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': header['kid']}).encode())}." \
               f"{b64u(json.dumps(claims).encode())}"
    hs256 = hs_input + "." + b64u(hmac.new(key1.public_pem.encode(), hs_input.encode(), hashlib.sha256).digest())
    h0, c0, s0 = north.split(".")
    altered = json.loads(unb64u(c0))
    altered["partner_id"] = "partner-southwind"
    tampered = f"{h0}.{b64u(json.dumps(altered).encode())}.{s0}"
    other_realm = token_response(*open(os.path.join(SECRETS, "demo-partners")).read().split()[:2])["access_token"]
    hostile = {
        "no token": dict(token=None),
        "not a JWT": dict(raw_auth="Bearer not-a-token"),
        "Basic credentials": dict(raw_auth="Basic dXNlcjpwYXNz"),
        "bytes that are not text": dict(raw_auth="Bearer \xff\xfe\x01.\x80\x81.\x00abc"),
        "a 15 KiB token": dict(token=".".join(["A" * 5000] * 3)),
        "a token with a space inside": dict(raw_auth="Bearer " + forged[:40] + " " + forged[40:]),
        "expired": dict(token=jwt(header, dict(claims, exp=now - 60, iat=now - 400), key1)),
        "not yet valid": dict(token=jwt(header, dict(claims, nbf=now + 600), key1)),
        "issued in the future": dict(token=jwt(header, dict(claims, iat=now + 600, exp=now + 900), key1)),
        "wrong issuer": dict(token=jwt(header, dict(claims, iss=ISSUER), key1)),
        "wrong audience": dict(token=jwt(header, dict(claims, aud="account", azp="lmp-cli"), key1)),
        "no expiry": dict(token=jwt(header, {k: v for k, v in claims.items() if k != "exp"}, key1)),
        "an ID token": dict(token=jwt(header, dict(claims, typ="ID"), key1)),
        "alg none": dict(token=alg_none),
        "HS256 keyed with the realm's public key": dict(token=hs256),
        "payload altered after signing": dict(token=tampered),
        "unknown kid": dict(token=jwt(dict(header, kid="not-a-key-of-the-realm"), claims, stranger)),
        "the realm's kid, another key": dict(token=jwt(header, claims, stranger)),
        "a token of another realm": dict(token=other_realm),
        "a partner claim that is not an id": dict(token=jwt(header, dict(claims, partner_id="north wind/../x"), key1)),
        "a claim holding NUL": dict(token=jwt(header, dict(claims, email="a\u0000@b.example"), key1)),
    }
    for name, how in hostile.items():
        req = example("virtual-core.json")
        code, h, body = call(door, "POST", req, **how)
        check(code == 401, f"{name}: {code} {body}")
        check(h.get("WWW-Authenticate", "").startswith('Bearer realm="lmp"'), f"{name}: {h}")
        check(isinstance(json.loads(body).get("error"), str), f"{name}: {body}")
        # The status route refuses it the same way.
        code, _, body = call(p.http + f"/v1/onboardings/{accepted[0]}", **how)
        check(code == 401, f"{name} on the status route: {code} {body}")
        log(f"refused, 401: {name}: {json.loads(body)['error']}")
    published = [m.key().decode() for m in ns.consume_all("onboarding.requested")]
    check(sorted(published) == sorted(accepted), f"published {published}, taken {accepted}")

    # One partner's onboarding does not exist for another: the same 404 as an unknown id.
    mine = accepted[0]
    code, _, body = call(p.http + f"/v1/onboardings/{mine}?wait=20", token=north)
    check(code == 200 and json.loads(body)["partner_id"] == "partner-northwind", f"{code} {body}")
    theirs = call(p.http + f"/v1/onboardings/{mine}", token=east)
    unknown = call(p.http + f"/v1/onboardings/{uuid.uuid4()}", token=east)
    check(theirs[0] == unknown[0] == 404 and theirs[2] == unknown[2], f"{theirs} vs {unknown}")
    # A body that names another partner is refused whole; so is a user whose email the
    # identity provider has not verified (the mails would go there).
    post(east, example("virtual-core.json", partner_id="partner-northwind"), expect=403)
    post(jwt(header, dict(claims, email_verified=False), key1), expect=403)
    # A long poll stops when its token expires, whatever wait it asked for.
    short = jwt(header, dict(claims, exp=int(time.time()) + 2), key1)
    t0 = time.time()
    code, h, body = call(p.http + f"/v1/onboardings/{accepted[0]}?wait=40", token=short, timeout=60)
    check(code == 401 and "expired" in body and time.time() - t0 < 30, f"{code} {body} after {time.time() - t0:.0f} s")
    # The partner and the submitter come from the token, whatever the body says or
    # leaves out: the mails go to whoever signed in.
    req = example("virtual-core.json", submitted_by="someone@else.example")
    del req["partner_id"]
    code, _, body = call(door, "POST", req, token=east)
    check(code == 202, f"{code} {body}")
    eid = json.loads(body)["onboarding_id"]
    check(eid == onboarding_id("partner-eastwind", req["request_id"]), body)
    code, _, body = call(p.http + f"/v1/onboardings/{eid}?wait=20", token=east)
    st = json.loads(body)
    check(st["partner_id"] == "partner-eastwind" and st["submitted_by"] == "east@partner-eastwind.example", st)
    # Two partners with one request id: two onboardings, neither refused nor revealed.
    shared = example("virtual-core.json")
    post(north, shared)
    theirs_too = dict(example("virtual-core.json"), request_id=shared["request_id"], partner_id="partner-eastwind")
    post(east, theirs_too)
    check(onboarding_id(shared) != onboarding_id(theirs_too), "ids scoped to their partner")
    for tok, req in ((north, shared), (east, theirs_too)):
        code, _, body = call(p.http + f"/v1/onboardings/{onboarding_id(req)}?wait=20", token=tok)
        check(code == 200 and json.loads(body)["status"] == "accepted", f"{code} {body}")

    # Operators: a token with the operator role opens the admin routes, audited by name;
    # a partner's token does not.
    ops = token_response("ops", password, issuer=issuer)["access_token"]
    code, _, body = call(p.admin + f"/v1/onboardings/{mine}", token=ops)
    check(code == 200 and json.loads(body)["onboarding_id"] == mine, f"{code} {body}")
    code, _, body = call(p.admin + f"/v1/onboardings/{mine}", token=north)
    check(code == 403, f"a partner on the admin listener: {code} {body}")
    code, _, body = call(p.admin + f"/v1/onboardings/{mine}", token=tampered)
    check(code == 401, f"a tampered token on the admin listener: {code} {body}")
    code, _, body = call(p.admin + f"/v1/onboardings/{mine}", token=secret("admin-token"))
    check(code == 200, f"the token file still works: {code} {body}")
    wait_for("audit lines naming the operator", lambda: f"audit: ops from 127.0.0.1: GET /v1/onboardings/{mine} -> 200"
             in open(p.logfile).read() and "audit: token:" in open(p.logfile).read(), timeout=10)

    # Submissions past a partner's rate: 429 with Retry-After, nothing published.
    slow = ns.start("intake", **settings, LMP_INTAKE_SUBMISSIONS_PER_PARTNER_PER_MIN=2)
    before = len(ns.consume_all("onboarding.requested"))
    codes = [call(slow.http + "/v1/onboardings", "POST", example("virtual-core.json", partner_id="partner-eastwind"),
                  token=east) for _ in range(3)]
    check([c[0] for c in codes] == [202, 202, 429], [c[:1] + c[2:] for c in codes])
    check(int(codes[2][1]["Retry-After"]) >= 1, codes[2][1])
    check(len(ns.consume_all("onboarding.requested")) == before + 2, "the refused one is not published")

    # A new signing key in the realm is followed without a restart.
    key2 = Key(os.path.dirname(key1.path), "rotated")
    realm_path = "/realms/" + issuer.rsplit("/", 1)[1]
    comp = key_component(key2, 2000)
    comp.update(providerType="org.keycloak.keys.KeyProvider", parentId=json.loads(kc("GET", realm_path)[1])["id"])
    code, body = kc("POST", realm_path + "/components", comp)
    check(code == 201, f"adding a key: {code} {body}")
    rotated = token_response("north", password, issuer=issuer)["access_token"]
    check(parts(rotated)[0]["kid"] != header["kid"], "the realm signs with the new key")
    post(rotated)
    post(jwt(parts(rotated)[0], parts(rotated)[1], key2))
    log("a token of the new key taken without a restart")

    # The identity provider stopped: a daemon that has the keys goes on with them; one
    # that has not (just started) answers 503 with Retry-After, never a pass.
    fresh = ns.start("intake", **settings)
    env = dict(os.environ)
    subprocess.run([os.path.join(ROOT, "deploy", "stack"), "keycloak-down"], env=env, check=True, timeout=120)
    try:
        code, h, body = call(fresh.http + "/v1/onboardings", "POST", example("virtual-core.json"), token=rotated)
        check(code == 503 and int(h["Retry-After"]) >= 1, f"{code} {h} {body}")
        code, _, body = call(fresh.http + f"/v1/onboardings/{mine}", token=north)
        check(code == 503, f"status with the provider away: {code} {body}")
        code, _, body = call(fresh.http + f"/v1/onboardings/{mine}", token=tampered)
        check(code in (401, 503), f"a tampered token is never a pass: {code} {body}")
        post(rotated)  # the first daemon's cached keys still cover it
        log("with the identity provider stopped: 503 where the keys are not cached, the cache serves the rest")
    finally:
        up = subprocess.run([os.path.join(ROOT, "deploy", "stack"), "keycloak-up"], env=env, capture_output=True,
                            text=True, timeout=300)
        if up.returncode != 0:
            with open(os.path.join(STACK_DIR, "keycloak.log"), errors="replace") as fh:
                tail = fh.read()[-6000:]
            check(False, f"the identity provider did not come back: {up.stderr.strip()}\n{tail}")
    wait_for("the fresh daemon taking tokens again", lambda: call(
        fresh.http + f"/v1/onboardings/{mine}", token=token_response("north", password, issuer=issuer)[
            "access_token"])[0] == 200, timeout=60, interval=1.5)


if __name__ == "__main__":
    sys.exit(run(test_signin))
