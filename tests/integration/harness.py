"""Shared helpers of the integration tests: a private namespace (topics under their
own prefix, a fresh database) on the real broker and PostgreSQL of the test stack,
daemons started as real processes, and an Avro client written with fastavro, an
off-the-shelf library that shares no code with the daemons."""

import email
import email.policy
import io
import json
import os
import random
import signal
import socket
import string
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import fastavro
import psycopg
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("LMP_BUILD_DIR", os.path.join(ROOT, "build"))
KAFKA_PORT = int(os.environ.get("LMP_KAFKA_PORT", "29092"))
# Every node of the stack's broker (deploy/stack: node i at LMP_KAFKA_PORT + 10 i).
NODES = int(os.environ.get("LMP_KAFKA_NODES", "1"))
BROKERS = ",".join(f"127.0.0.1:{KAFKA_PORT + 10 * i}" for i in range(NODES))
PG_PORT = int(os.environ.get("LMP_PG_PORT", "25432"))
SMTP_PORT = int(os.environ.get("LMP_SMTP_PORT", "22525"))
STACK_DIR = os.environ.get("LMP_STACK_DIR", os.path.join(BUILD, "stack"))
MAILDIR = os.path.join(STACK_DIR, "maildir", "new")
SECRETS = os.path.join(STACK_DIR, "secrets")
CONFIG = os.path.join(STACK_DIR, "config")
# The stack is secured unless it was brought up with LMP_STACK_SECURITY=plaintext.
SECURED = os.path.exists(os.path.join(SECRETS, "ca.crt"))
REGISTRY_PORT = int(os.environ.get("LMP_REGISTRY_PORT", KAFKA_PORT + 88))
REGISTRY_URL = f"{'https' if SECURED else 'http'}://127.0.0.1:{REGISTRY_PORT}/apis/ccompat/v7"
# The identity provider (Keycloak) of the stack, and the realm partners sign in to.
KEYCLOAK_PORT = int(os.environ.get("LMP_KEYCLOAK_PORT", KAFKA_PORT + 89))
ISSUER = f"{'https' if SECURED else 'http'}://127.0.0.1:{KEYCLOAK_PORT}/realms/lmp"
JAEGER_PORT = int(os.environ.get("LMP_JAEGER_PORT", KAFKA_PORT + 91))
JAEGER_OTLP_PORT = int(os.environ.get("LMP_JAEGER_OTLP_PORT", KAFKA_PORT + 92))
JAEGER_URL = f"http://127.0.0.1:{JAEGER_PORT}"  # the trace viewer's UI and query API
# The namespace of onboarding ids (lmp_onboarding_id in common/src/base/ids.c).
ONBOARDING_NS = uuid.UUID("6b1e0f4c-8d2a-4e57-9a31-5c7e20d48b93")


def registry_env(url=REGISTRY_URL):
    """A daemon's settings for framing its events with the stack's schema registry."""
    # A plaintext stack's registry speaks http://, which a daemon takes only when told.
    return {"LMP_SCHEMA_REGISTRY_URL": url,
            "LMP_SCHEMA_REGISTRY_CA_FILE": os.path.join(SECRETS, "ca.crt") if SECURED else "",
            "LMP_SCHEMA_REGISTRY_ALLOW_HTTP": "false" if SECURED else "true"}


def registry_client(url=REGISTRY_URL):
    """confluent-kafka's own registry client, for its AvroSerializer and AvroDeserializer."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    conf = {"url": url}
    if SECURED:
        conf["ssl.ca.location"] = os.path.join(SECRETS, "ca.crt")
        # The registry takes its clients only: the operator's, which may register.
        conf["basic.auth.user.info"] = f"registry-admin:{secret('registry-admin.password')}"
    return SchemaRegistryClient(conf)


def secret(name):
    with open(os.path.join(SECRETS, name)) as fh:
        return fh.read().strip()


def kafka_conf(user="admin", **extra):
    """A Python client's settings: SASL_SSL with the principal's SCRAM password on the
    secured stack (confluent-kafka's librdkafka is new enough for Kafka's SCRAM)."""
    c = {"bootstrap.servers": BROKERS}
    if SECURED:
        c.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
                  "sasl.password": secret(f"kafka-{user}.password"),
                  "ssl.ca.location": os.path.join(SECRETS, "ca.crt")})
    c.update(extra)
    return c


def pg_connect(dbname, user="lmp", **kw):
    """A connection to the stack's PostgreSQL: TLS verified and a password when secured."""
    if SECURED:
        kw.update(password=secret(f"pg-{user}.password"), sslmode="verify-full",
                  sslrootcert=os.path.join(SECRETS, "ca.crt"))
    return psycopg.connect(host="127.0.0.1", port=PG_PORT, user=user, dbname=dbname, **kw)


def stack_conf(service):
    """The stack's settings for a daemon, as a dict of name to value."""
    out = {}
    with open(os.path.join(CONFIG, f"{service}.conf")) as fh:
        for line in fh:
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip()
    return out


def role(service):
    """A daemon's PostgreSQL role (and the name of its database in the stack): it reads
    and writes rows, and changes no table."""
    return "lmp_" + service.replace("-", "_")


def owner_role(service):
    """The role that owns a daemon's tables and applies its migrations."""
    return role(service) + "_owner"


def create_database(c, db, service):
    """A daemon's database as the stack makes one (c: the superuser's, autocommit):
    owned by the role that migrates it, reached by that role and the daemon's alone."""
    if not SECURED:
        c.execute(f'CREATE DATABASE "{db}"')
        return
    c.execute(f'CREATE DATABASE "{db}" OWNER {owner_role(service)}')
    c.execute(f'REVOKE ALL ON DATABASE "{db}" FROM PUBLIC')
    c.execute(f'GRANT CONNECT ON DATABASE "{db}" TO {role(service)}')


def _daemons():
    """The daemons of deploy/daemons, in order: the one list every script reads."""
    with open(os.path.join(ROOT, "deploy", "daemons")) as fh:
        return [line.split()[0] for line in fh if line[:1].isalpha()]


SERVICES = _daemons()
# Event types several daemons write: a topic per writer (<prefix><type>.<writer>),
# as the runtime's lmp_event_writers says.
WRITERS = {"onboarding.failed": ["allocation", "appliance-fulfilment", "shipping"]}
DEMO_DATA = os.path.join(ROOT, "deploy", "demo-data.json")
EXAMPLES = os.path.join(ROOT, "deploy", "examples")


class Failure(Exception):
    pass


def onboarding_id(request, request_id=None):
    """The id intake gives a request: scoped to its partner (a request, or a partner id
    and a request id)."""
    if isinstance(request, dict):
        partner, request_id = request["partner_id"], request["request_id"]
    else:
        partner = request
    return str(uuid.uuid5(ONBOARDING_NS, f"{len(partner.encode())}:{partner}/{request_id}"))


def demo_logins():
    """The stack's demo partner users: {partner_id: (username, password)}."""
    out = {}
    with open(os.path.join(SECRETS, "demo-partners")) as fh:
        for line in fh:
            if line.strip():
                user, password, partner = line.split()
                out.setdefault(partner, (user, password))
    return out


def _ssl_context():
    import ssl
    return ssl.create_default_context(cafile=os.path.join(SECRETS, "ca.crt")) if SECURED else None


def tls_context(url):
    """The stack's CA for an https:// URL, nothing for http://."""
    return _ssl_context() if url.startswith("https://") else None


def connect(url, source=None, timeout=5):
    """A raw client connection to the listener of url (from the address source): TLS,
    verified by the stack's CA, for https://, so that what a test sends reaches the
    HTTP server as it is."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    if url.startswith("https://"):
        try:
            s = _ssl_context().wrap_socket(s, server_hostname=host)
        except OSError:
            s.close()
            raise
    return s


def allow_page(origin):
    """Lets the identity provider send a browser back to the page at origin (https://
    with a port of the moment) after sign-in and sign-out: Keycloak takes any port for
    loopback http:// redirect URIs only. Under a lock, since tests run side by side
    and the client's list is read, changed and written back."""
    if not origin.startswith("https://"):
        return
    import fcntl
    api = f"{ISSUER.rsplit('/realms/', 1)[0]}/admin/realms/lmp"
    with open(os.path.join(STACK_DIR, ".portal-redirects.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        body = urllib.parse.urlencode({"grant_type": "password", "client_id": "admin-cli",
                                       "username": secret("keycloak-admin.username"),
                                       "password": secret("keycloak-admin.password")}).encode()
        req = urllib.request.Request(f"{ISSUER.rsplit('/realms/', 1)[0]}/realms/master/protocol/openid-connect/token",
                                     data=body, method="POST")
        admin = with_retries(lambda: json.loads(urllib.request.urlopen(req, timeout=20,
                                                                       context=_ssl_context()).read()))
        auth = {"Authorization": f"Bearer {admin['access_token']}", "Content-Type": "application/json"}
        with urllib.request.urlopen(urllib.request.Request(f"{api}/clients?clientId=lmp-portal", headers=auth),
                                    timeout=20, context=_ssl_context()) as r:
            client = json.loads(r.read())[0]
        uri = origin + "/*"
        client["redirectUris"] = sorted(set(client.get("redirectUris", [])) | {uri})
        attrs = client.setdefault("attributes", {})
        logout = set(filter(None, attrs.get("post.logout.redirect.uris", "").split("##")))
        attrs["post.logout.redirect.uris"] = "##".join(sorted(logout | {uri}))
        req = urllib.request.Request(f"{api}/clients/{client['id']}", data=json.dumps(client).encode(), method="PUT",
                                     headers=auth)
        with urllib.request.urlopen(req, timeout=20, context=_ssl_context()):
            pass


def _pool_died(e):
    """Keycloak's answer when the database connection it took from its pool died (the
    stack's PostgreSQL restarted: integration.20, fault.short): it cannot look the
    client up, and says invalid_client or unauthorized_client, "Unexpected error when
    authenticating client" (400 or 401). Our clients exist; a wrong password is
    invalid_grant, and is not retried."""
    if not isinstance(e, urllib.error.HTTPError) or e.code not in (400, 401):
        return False
    try:
        body = json.loads(e.read() or b"{}")
    except ValueError:
        return False
    log(f"the identity provider refused the client: {body}")
    return body.get("error") == "invalid_client" or (
        body.get("error") == "unauthorized_client" and
        str(body.get("error_description", "")).startswith("Unexpected error when authenticating client"))


def with_retries(fn, tries=6):
    """fn(), again after a second when the identity provider answered 5xx, not at all,
    or lost a pooled database connection: right after the stack's PostgreSQL restarts
    (integration.20) its first requests fail on pooled connections that died, as a
    real client would see it."""
    for i in range(tries):
        try:
            return fn()
        except (urllib.error.HTTPError, urllib.error.URLError, ConnectionError) as e:
            transient = not isinstance(e, urllib.error.HTTPError) or e.code >= 500 or _pool_died(e)
            if not transient or i == tries - 1:
                raise
            log(f"the identity provider answered {e}; again in a second")
            time.sleep(1)


def token_response(username, password, client_id="lmp-cli", issuer=None):
    """A password grant at the identity provider: its JSON answer (access_token, ...)."""
    body = urllib.parse.urlencode({"grant_type": "password", "client_id": client_id, "username": username,
                                   "password": password, "scope": "openid"}).encode()
    req = urllib.request.Request(f"{issuer or ISSUER}/protocol/openid-connect/token", data=body, method="POST")

    def grant():
        with urllib.request.urlopen(req, timeout=20, context=_ssl_context()) as r:
            return json.loads(r.read())
    return with_retries(grant)


_tokens = {}


def token(partner="partner-northwind"):
    """An access token of a demo user of partner (or of a username in secrets'
    demo-operator for "operator"), fetched once and again when near its expiry."""
    now = time.time()
    if partner in _tokens and _tokens[partner][1] > now + 30:
        return _tokens[partner][0]
    if partner == "operator":
        user, password = secret("demo-operator").split()[:2]
    else:
        user, password = demo_logins()[partner]
    t = token_response(user, password)
    _tokens[partner] = (t["access_token"], now + t.get("expires_in", 60))
    return t["access_token"]


def token_claims(access_token):
    """The claims of an access token, read without verifying it (the test's own token)."""
    import base64
    part = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def log(*a):
    print(*a, flush=True)


# ---- schemas, read from schemas/ with fastavro alone ----------------------------

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
NAMED = {"record", "error", "enum", "fixed"}


def _full(name, ns):
    return name if "." in name or not ns else f"{ns}.{name}"


def _collect(s, ns, defs):
    """Every named type a schema defines, by full name."""
    if isinstance(s, list):
        for b in s:
            _collect(b, ns, defs)
    elif isinstance(s, dict):
        t = s.get("type")
        if isinstance(t, (dict, list)):
            _collect(t, ns, defs)
        elif t in NAMED:
            full = _full(s["name"], s.get("namespace", ns))
            defs[full] = s
            inner = full.rpartition(".")[0]
            for f in s.get("fields", []):
                _collect(f["type"], inner, defs)
        elif t == "array":
            _collect(s["items"], ns, defs)
        elif t == "map":
            _collect(s["values"], ns, defs)


def _expand(s, ns, defs, seen):
    """The schema made self-contained: a type of another file is defined where it
    is first used, and referred to by full name after that."""
    if isinstance(s, str):
        if s in PRIMITIVES:
            return s
        full = _full(s, ns)
        if full in seen or full not in defs:
            return full
        d = dict(defs[full], name=full)
        d.pop("namespace", None)
        return _expand(d, "", defs, seen)
    if isinstance(s, list):
        return [_expand(b, ns, defs, seen) for b in s]
    s = dict(s)
    t = s.get("type")
    if isinstance(t, (dict, list)) or (isinstance(t, str) and t not in PRIMITIVES | NAMED | {"array", "map"}):
        s["type"] = _expand(t, ns, defs, seen)
    elif t in NAMED:
        full = _full(s["name"], s.get("namespace", ns))
        seen.add(full)
        inner = full.rpartition(".")[0]
        if "fields" in s:
            s["fields"] = [dict(f, type=_expand(f["type"], inner, defs, seen)) for f in s["fields"]]
    elif t == "array":
        s["items"] = _expand(s["items"], ns, defs, seen)
    elif t == "map":
        s["values"] = _expand(s["values"], ns, defs, seen)
    return s


def load_schemas():
    """Every .avsc of schemas/, made self-contained; canonical form and fingerprint
    are fastavro's own."""
    raw, defs = {}, {}
    for f in sorted(os.listdir(os.path.join(ROOT, "schemas"))):
        if f.endswith(".avsc"):
            with open(os.path.join(ROOT, "schemas", f)) as fh:
                raw[f[:-5]] = json.load(fh)
            _collect(raw[f[:-5]], "", defs)
    out = {}
    for name, s in raw.items():
        full = _expand(s, "", defs, set())
        parsed = parse_schema(full, _write_hint=False)
        canon = to_parsing_canonical_form(parsed)
        # fastavro spells the fingerprint as its little-endian bytes, as framed on the wire.
        fp = int.from_bytes(bytes.fromhex(fingerprint(canon, "CRC-64-AVRO")), "little")
        out[name] = {"schema": parsed, "canonical": canon, "fp": fp, "json": json.dumps(full)}
    return out


SCHEMAS = load_schemas()
BY_FP = {v["fp"]: k for k, v in SCHEMAS.items()}


def encode(event_type, record):
    s = SCHEMAS[event_type]
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + struct.pack("<Q", s["fp"]))
    fastavro.schemaless_writer(buf, s["schema"], record)
    return buf.getvalue()


def decode(data):
    check(data[:2] == b"\xc3\x01", f"not single-object encoded: {data[:12]!r}")
    fp = struct.unpack("<Q", data[2:10])[0]
    check(fp in BY_FP, f"unknown fingerprint {fp:016x}")
    name = BY_FP[fp]
    return name, fastavro.schemaless_reader(io.BytesIO(data[10:]), SCHEMAS[name]["schema"])


def example(name, **changes):
    """An example request with a fresh id, optionally changed."""
    with open(os.path.join(EXAMPLES, name)) as fh:
        r = json.load(fh)
    r["request_id"] = str(uuid.uuid4())
    r["submitted_at"] = int(time.time() * 1000)
    r["customer"]["legal_name"] += " " + r["request_id"][:8]
    for k, v in changes.items():
        r[k] = v
    return r


# ---- a private namespace on the shared stack -----------------------------------

# A group's coordinator is moving or loading: asking again gets the answer.
MOVING_COORDINATOR = ("NOT_COORDINATOR", "COORDINATOR_NOT_AVAILABLE", "COORDINATOR_LOAD_IN_PROGRESS",
                      "_WAIT_COORD", "_TIMED_OUT", "_TRANSPORT")


class Namespace:
    def __init__(self, name):
        tag = "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
        self.prefix = f"it.{name}.{tag}."
        self.dlq = [self.dead_letters(service) for service in SERVICES]  # every daemon's
        self.db = f"it_{name}_{tag}"
        self.procs = []
        self.groups = set()
        self.http = {}
        self.admin = {}
        with pg_connect("postgres", autocommit=True) as c:
            for service in SERVICES:
                create_database(c, self.dbname(service), service)
        self.lmpctl("topics", "create", "--wait", "60")
        if SECURED:
            # Each daemon's principal may do what its route table says, under this prefix.
            for service in SERVICES:
                acls = subprocess.run([os.path.join(BUILD, "services", service, f"lmp-{service}"), "--print-acls"],
                                      env=self.env(service), capture_output=True, text=True, timeout=30)
                check(acls.returncode == 0, f"{service} --print-acls: {acls.stderr}")
                self.lmpctl("acls", "apply", f"User:lmp-{service}", input=acls.stdout)
        # Quiet: the fault tests restart the broker under it on purpose.
        self.producer = Producer(kafka_conf(**{"enable.idempotence": True, "message.max.bytes": 2000000,
                                               "log_level": 2}))

    def register_schemas(self, service, url=REGISTRY_URL):
        """lmp-<service> --register-schemas with the operator's registry client, under
        this namespace's subjects."""
        exe = os.path.join(BUILD, "services", service, f"lmp-{service}")
        env = self.env(service, **registry_env(url), LMP_SCHEMA_REGISTRY_USERNAME="registry-admin",
                       LMP_SCHEMA_REGISTRY_PASSWORD_FILE=os.path.join(SECRETS, "registry-admin.password"))
        out = subprocess.run([exe, "--register-schemas"], env=env, capture_output=True, text=True, timeout=120)
        check(out.returncode == 0, f"{service} --register-schemas: {out.stdout} {out.stderr}")

    def lmpctl(self, *args, input=None, check_rc=True, timeout=120):
        """lmpctl as the operator, in this namespace."""
        out = subprocess.run([os.path.join(BUILD, "tools", "lmpctl"), *args], env=self.ctl_env(), input=input,
                             capture_output=True, text=True, timeout=timeout)
        if check_rc:
            check(out.returncode == 0, f"lmpctl {' '.join(args)}: {out.stderr}")
        return out

    def ctl_env(self, **extra):
        e = dict(os.environ, LMP_CONFIG=os.path.join(CONFIG, "lmpctl.conf"), LMP_KAFKA_TOPIC_PREFIX=self.prefix)
        for svc, url in self.http.items():
            e[f"LMP_{svc.upper().replace('-', '_')}_URL"] = url
        for svc, url in self.admin.items():
            e[f"LMP_{svc.upper().replace('-', '_')}_ADMIN_URL"] = url
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def topic(self, event_type, writer=None):
        """An event type's topic; for one several daemons write (WRITERS), the given
        writer's, or the first writer's."""
        if event_type in WRITERS:
            return f"{self.prefix}{event_type}.{writer or WRITERS[event_type][0]}"
        return self.prefix + event_type

    def topics(self, event_type):
        """Every topic an event type is on: one per writer of a type several write."""
        return [self.topic(event_type, w) for w in WRITERS.get(event_type, [None])]

    def _names(self, topic):
        """Full topic names for a topic, an event type (all its topics) or a list."""
        out = []
        for t in (topic if isinstance(topic, list) else [topic]):
            out += [t] if t.startswith(self.prefix) else self.topics(t)
        return out

    def dead_letters(self, service):
        """A daemon's own dead-letter topic: only its principal may write it."""
        return f"{self.prefix}dead-letter.{service}"

    def replays(self, service):
        """Where lmpctl dlq replay hands a daemon's dead letters back to it."""
        return f"{self.prefix}replay.{service}"

    def dbname(self, service):
        return self.db if service == "intake" else f"{self.db}_{service.replace('-', '_')}"

    def env(self, service="intake", **extra):
        """A daemon's environment: the stack's settings for it (its principal, its role),
        and this namespace's topics, database and group."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("LMP_")}
        e.update({
            "LMP_CONFIG": os.path.join(CONFIG, f"{service}.conf"),
            "LMP_KAFKA_TOPIC_PREFIX": self.prefix,
            "LMP_PG_DATABASE": self.dbname(service),
            "LMP_KAFKA_GROUP_ID": f"lmp-{service}-" + self.prefix,
            "LMP_OUTBOX_SWEEP_MS": "1000",
            "LMP_NOTIFIER_SMTP_URL": f"smtp://127.0.0.1:{SMTP_PORT}",
        })
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def sql(self, query, *args, service="intake"):
        with pg_connect(self.dbname(service)) as c:
            return c.execute(query, args).fetchall()

    def admin_post(self, service, path, obj, token=None):
        """POST to a daemon's admin route with the operator's token."""
        return http_post(self.admin[service] + path, obj, token=token or secret("admin-token"), timeout=120)

    def admin_get(self, service, path):
        return http_get(self.admin[service] + path, token=secret("admin-token"))

    def wait_published(self, services=None, timeout=120):
        """Until every daemon's outbox is empty: all it committed is on the broker."""
        for service in services or SERVICES:
            wait_for(f"{service}'s outbox published", lambda service=service: self.sql(
                "SELECT count(*) FROM lmp_outbox", service=service)[0][0] == 0, timeout=timeout)

    def routes(self, service):
        """The event types a daemon consumes, from its own route table."""
        exe = os.path.join(BUILD, "services", service, f"lmp-{service}")
        out = subprocess.run([exe, "--print-routes"], env=self.env(service), capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, f"{service} --print-routes: {out.stderr}")
        return [line.split()[1] for line in out.stdout.splitlines() if line.startswith("consumes ")]

    def start_all(self, load=DEMO_DATA, **env):
        """Every daemon of the flow, with the reference data loaded."""
        for service in SERVICES:
            self.start(service, **env)
        if load:
            self.load_reference_data(load)

    def load_reference_data(self, path=DEMO_DATA):
        with open(path) as fh:
            data = json.load(fh)
        for service, section in data.items():
            code, body = self.admin_post(service, "/v1/admin/load", section)
            check(code == 200, f"loading {service}: {code} {body}")

    def mail_ids(self, onboarding_id=None):
        """Message-ID header -> (onboarding id, kind) of the mails this namespace's
        notifier recorded (of one onboarding): the Message-ID is random and names
        neither, so its row in the notifier's table is the only way back."""
        query = "SELECT message_id, onboarding_id, kind FROM mails"
        args = ()
        if onboarding_id is not None:
            query, args = query + " WHERE onboarding_id = %s", (onboarding_id,)
        return {f"<{mid}@lmp-onboarding>": (oid, kind)
                for mid, oid, kind in self.sql(query, *args, service="notifier")}

    def mails(self, onboarding_id=None):
        """Mails the SMTP server received, as email messages: every one when
        onboarding_id is None (whoever sent it, so a smuggled message shows too), else
        those whose Message-ID this namespace's notifier stored for that onboarding."""
        ids = None if onboarding_id is None else self.mail_ids(onboarding_id)
        out = []
        if not os.path.isdir(MAILDIR) or ids == {}:
            return out
        for f in sorted(os.listdir(MAILDIR)):
            with open(os.path.join(MAILDIR, f), "rb") as fh:
                m = email.message_from_bytes(fh.read(), policy=email.policy.default)
            if ids is None or str(m["Message-ID"] or "").strip() in ids:
                out.append(m)
        return out

    # -- daemons --
    def start(self, service="intake", wait_ready=True, exe=None, wrapper=(), **env):
        """A daemon as a real process. It takes a free port itself and writes it to a
        file, so no port is picked here, released, and raced for by a parallel test."""
        n = len(self.procs)
        base = os.path.join(BUILD, "Testing", f"{self.db}-{service}-{n}")
        logf = open(base + ".log", "w")
        port_file = base + ".port"
        if os.path.exists(port_file):
            os.unlink(port_file)
        exe = exe or os.path.join(BUILD, "services", service, f"lmp-{service}")
        env = {"LMP_HTTP_PORT": 0, "LMP_ADMIN_PORT": 0, "LMP_HTTP_PORT_FILE": port_file, **env}
        group = env.get("LMP_KAFKA_GROUP_ID")
        if SECURED and group and (service, group) not in self.groups:
            # A group of the test's own choosing: the daemon's principal may use it.
            self.lmpctl("acls", "apply", f"User:lmp-{service}", input=f"group {group} read\n")
            self.groups.add((service, group))
        if SECURED and env.get("LMP_SCHEMA_REGISTRY_URL"):
            # The daemon's registry client may only read: its schemas are registered
            # for this namespace first, as the operator does (the stack's README).
            self.register_schemas(service, env["LMP_SCHEMA_REGISTRY_URL"])
        p = subprocess.Popen([*wrapper, exe], env=self.env(service, **env), stdout=logf, stderr=logf)
        p.service = service
        p.logfile = logf.name
        self.procs.append(p)
        deadline = time.time() + (120 if wrapper else 30)
        while not os.path.exists(port_file):
            check(p.poll() is None, f"{service} exited with {p.returncode} before listening, see {p.logfile}")
            check(time.time() < deadline, f"{service} wrote no port file in time, see {p.logfile}")
            time.sleep(0.05)
        with open(port_file) as fh:
            ports = json.load(fh)
        # Secured, the stack's settings serve both listeners over TLS, unless the test
        # names other files (or none).
        scheme = {f: "https" if env.get(f"LMP_{f.upper()}_TLS_CERT_FILE", SECURED) else "http"
                  for f in ("http", "admin")}
        p.http = f"{scheme['http']}://127.0.0.1:{ports['http']}"
        p.admin = f"{scheme['admin']}://127.0.0.1:{ports['admin']}"
        self.http.setdefault(service, p.http)
        self.admin.setdefault(service, p.admin)
        if wait_ready:
            self.wait_ready(p, timeout=120 if wrapper else 60)
        return p

    def wait_assigned(self, p, timeout=60):
        """Until the daemon's consumer holds partitions: its last rebalance line in
        the log is an assignment of at least one partition."""
        def assigned():
            last = None
            with open(p.logfile, errors="replace") as fh:
                for line in fh:
                    if '"msg":"assigned: ' in line or '"msg":"revoked: ' in line:
                        last = line
            return last if last and '"msg":"assigned: ' in last and "(none)" not in last else None
        return wait_for(f"{p.service} to hold partitions", assigned, timeout=timeout)

    def wait_ready(self, p, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            check(p.poll() is None, f"daemon exited with {p.returncode}, see {p.logfile}")
            code, _ = http_get(p.http + "/readyz")
            if code == 200:
                return
            time.sleep(0.2)
        raise Failure(f"daemon not ready after {timeout}s, see {p.logfile}")

    def close(self):
        """Stops every daemon with SIGTERM; returns the problems seen: a daemon that
        did not drain cleanly, or a sanitizer report in any daemon's log."""
        problems = []
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    if p.wait(30) != 0:
                        problems.append(f"{p.logfile}: exit status {p.returncode} after SIGTERM")
                except subprocess.TimeoutExpired:
                    p.kill()
                    problems.append(f"{p.logfile}: did not stop within 30 s of SIGTERM")
        for p in self.procs:
            with open(p.logfile, errors="replace") as fh:
                text = fh.read()
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                if marker in text:
                    problems.append(f"{p.logfile}: {marker}")
        self.producer.flush(10)
        return problems

    def drop(self):
        """Deletes this namespace's topics and databases, after close(). The tests keep
        theirs for a failure to be read; a benchmark's ten thousand onboardings would
        leave gigabytes on the stack at every run."""
        from confluent_kafka.admin import AdminClient
        admin = AdminClient(kafka_conf())
        topics = [t for t in admin.list_topics(timeout=30).topics if t.startswith(self.prefix)]
        for f in (admin.delete_topics(topics, operation_timeout=60).values() if topics else ()):
            f.result()
        with pg_connect("postgres", autocommit=True) as c:
            for service in SERVICES:
                c.execute(f'DROP DATABASE IF EXISTS "{self.dbname(service)}" WITH (FORCE)')

    # -- Kafka --
    def publish(self, event_type, record=None, key=None, raw=None, headers=None, flush=True):
        value = raw if raw is not None else encode(event_type, record)
        if key is None and record is not None:
            key = record.get("request_id")
        h = {"event_id": str(uuid.uuid4()), "event_type": event_type,
             "correlation_id": key or "", "traceparent":
             f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"}
        if headers is not None:
            h = headers
        self.producer.produce(self.topic(event_type) if not event_type.startswith(self.prefix) else event_type,
                              value=value, key=key, headers=list(h.items()))
        if flush:
            check(self.producer.flush(30) == 0, "publish not acknowledged")
        return h

    def consume(self, topic, count, timeout=60):
        """All messages of a topic (or of a list of topics) from the beginning, until
        count or timeout."""
        c = Consumer(kafka_conf(**{"group.id": "it-reader-" + str(uuid.uuid4()), "auto.offset.reset": "earliest",
                                   "enable.auto.commit": False, "log_level": 2}))
        c.subscribe(self._names(topic))
        out = []
        deadline = time.time() + timeout
        try:
            while len(out) < count and time.time() < deadline:
                m = c.poll(0.5)
                if m is None or m.error():
                    continue
                out.append(m)
        finally:
            c.close()
        return out

    def consume_all(self, topic, timeout=120):
        """Every message of a topic (or of each of a list) up to its end as it is now:
        read until each partition's position reaches the high watermark taken at the
        start, so the answer does not depend on how fast the machine is."""
        names = self._names(topic)
        if len(names) > 1:
            return [m for t in names for m in self.consume_all(t, timeout)]
        name = names[0]
        c = Consumer(kafka_conf(**{"group.id": "it-reader-" + str(uuid.uuid4()), "auto.offset.reset": "earliest",
                                   "enable.auto.commit": False, "log_level": 2}))
        try:
            parts = c.list_topics(name, timeout=30).topics[name].partitions
            ends = {}
            for p in parts:
                lo, hi = c.get_watermark_offsets(TopicPartition(name, p), timeout=30)
                if hi > lo:
                    ends[p] = hi
            c.assign([TopicPartition(name, p, 0) for p in ends])
            out, pos = [], {}
            deadline = time.time() + timeout
            while any(pos.get(p, -1) + 1 < hi for p, hi in ends.items()):
                check(time.time() < deadline, f"{name}: not read to its end in {timeout}s: at {pos}, ends {ends}")
                m = c.poll(0.5)
                if m is None or m.error():
                    continue
                pos[m.partition()] = m.offset()
                out.append(m)
            return out
        finally:
            c.close()

    def group_lag(self, group, topic, partitions=6):
        """How far a group's committed offsets are behind the ends of a topic, or of
        every topic of an event type (one per writer of a type several daemons write:
        a failure from shipping is as much to read as one from allocation). A broker
        that has just come back may not yet be, or no longer be, the group's
        coordinator (the fault tests restart it), and on a loaded machine it loads the
        group offsets for a while: asked again for up to two minutes, by a new client
        every few tries, which finds the coordinator afresh."""
        c = Consumer(kafka_conf(**{"group.id": group, "enable.auto.commit": False}))
        try:
            tps = [TopicPartition(t, p) for t in self._names(topic) for p in range(partitions)]
            deadline, attempt = time.monotonic() + 120, 0
            while True:
                try:
                    committed = c.committed(tps, timeout=10)
                    break
                except KafkaException as e:
                    moving = e.args[0].retriable() or e.args[0].name() in MOVING_COORDINATOR
                    if not moving or time.monotonic() > deadline:
                        raise
                    attempt += 1
                    if attempt % 5 == 0:
                        c.close()
                        c = Consumer(kafka_conf(**{"group.id": group, "enable.auto.commit": False}))
                    time.sleep(1)
            lag = 0
            for tp in committed:
                lo, hi = c.get_watermark_offsets(tp, timeout=10)
                lag += hi - (tp.offset if tp.offset >= 0 else lo)
            return lag
        finally:
            c.close()


class TcpGate:
    """A port the test owns from start to end: a listener bound once to a port the
    system chose, never released while the test runs. Closed, it accepts and hangs up
    at once (the server behind it is away), with `refusal` first when `refuse` is
    set; open, it relays each connection to the target port."""

    refusal = b""

    def __init__(self, target, open=True):
        self.target = target
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.open = open
        self.refuse = False
        self.refused = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if not self.open:
                self.refused += 1
                if self.refuse and self.refusal:
                    try:
                        conn.sendall(self.refusal)
                    except OSError:
                        pass
                conn.close()
                continue
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn):
        try:
            up = socket.create_connection(("127.0.0.1", self.target), timeout=30)
        except OSError:
            conn.close()
            return

        def pump(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pump, args=(up, conn), daemon=True)
        t.start()
        pump(conn, up)
        t.join(30)
        conn.close()
        up.close()

    def close(self):
        self.sock.close()


class SmtpGate(TcpGate):
    """The stack's SMTP server behind a gate, closed at first (the server is down);
    with `refuse` set it answers 554 and hangs up, a server that refuses for good."""

    refusal = b"554 5.7.1 no mail accepted here\r\n"

    def __init__(self):
        super().__init__(SMTP_PORT, open=False)
        self.url = f"smtp://127.0.0.1:{self.port}"


def headers(msg):
    return {k: (v.decode() if v is not None else None) for k, v in (msg.headers() or [])}


def deliver(producer, topic, value, key, headers=None):
    """Produces one message and waits for the broker's answer: None when it took it,
    else its error. A client that already knows from the topic's metadata that it may
    not write there refuses at once (produce raises), as the broker would: that answer
    is the same, and which of the two comes depends on timing."""
    result = {}
    try:
        producer.produce(topic, value=value, key=key, headers=list((headers or {}).items()),
                         on_delivery=lambda err, msg: result.setdefault("err", err))
    except KafkaException as e:
        return e.args[0]
    producer.flush(30)
    check("err" in result, f"no answer from the broker for {topic}")
    return result["err"]


def http_post(url, obj, token=None, timeout=10):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(obj).encode(), method="POST", headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=tls_context(url)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def http_get(url, token=None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5, context=tls_context(url)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def wait_for(what, fn, timeout=60, interval=0.2, show=None):
    """Polls fn until it returns something true. A database that is away for a
    moment (the fault tests restart it) counts as "not yet". On timeout the failure
    names what fn last returned, or what show() returns then (the state behind it)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
        except psycopg.OperationalError as e:
            last = f"database away: {e}"
            time.sleep(interval)
            continue
        if last:
            return last
        time.sleep(interval)
    if show is not None:
        try:
            last = show()
        except Exception as e:  # noqa: BLE001 - the failure is the point; this only adds detail
            last = f"(could not show: {e})"
    raise Failure(f"timed out waiting for {what} (last: {last!r})")


def cap_message_bytes(ns, event_type, n):
    """Sets max.message.bytes of an event type's topic and waits until the partitions'
    leader refuses a larger message: the controller takes the change at once, the
    leader applies it a moment later. Probes that got through before, keyed "probe",
    are on the topic."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    res = ConfigResource(ResourceType.TOPIC, ns.topic(event_type), incremental_configs=[
        ConfigEntry("max.message.bytes", str(n), incremental_operation=AlterConfigOpType.SET)])
    admin = AdminClient(kafka_conf())  # held until the answers are in
    for f in admin.incremental_alter_configs([res]).values():
        f.result(30)
    probe = Producer(kafka_conf())

    def refused():
        errs = []
        probe.produce(ns.topic(event_type), value=bytes(n + 100), key=b"probe",
                      on_delivery=lambda err, msg: errs.append(err))
        probe.flush(30)
        return bool(errs) and errs[0] is not None and errs[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    wait_for(f"the broker to apply max.message.bytes {n} to {event_type}", refused, timeout=60, interval=0.5)


class Load:
    """Virtual onboardings published at a steady rate until stopped (the lag tests)."""

    def __init__(self, ns, per_second=4):
        self.ns, self.gap, self.sent = ns, 1 / per_second, 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_flag.wait(self.gap):
            self.ns.publish("onboarding.requested", example("virtual-core.json"), flush=False)
            self.ns.producer.poll(0)
            self.sent += 1

    def stop(self):
        if not self.stop_flag.is_set():
            self.stop_flag.set()
            self.thread.join(10)
        check(self.ns.producer.flush(30) == 0, "the load was not acknowledged")


def group(ns, service):
    """The consumer group the harness gives a daemon."""
    return f"lmp-{service}-{ns.prefix}"


def run(test):
    """Runs one test function with a fresh namespace; exit status for CTest."""
    ns = Namespace(test.__name__.replace("test_", "")[:20])
    failure = None
    try:
        test(ns)
    except Failure as e:
        failure = str(e)
    except Exception:  # noqa: BLE001 - whatever broke, the daemons are stopped below
        import traceback
        failure = traceback.format_exc()
    problems = ns.close()
    if failure is None and problems:
        failure = "; ".join(problems)
    if failure is None:
        log(f"PASS {test.__name__}")
        return 0
    log(f"FAIL {test.__name__}: {failure}")
    for p in ns.procs:
        log(f"--- {p.logfile} (tail)")
        with open(p.logfile, errors="replace") as fh:
            log("".join(fh.readlines()[-30:]))
    return 1
