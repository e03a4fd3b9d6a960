"""The local stack itself, tried as an attacker on the same machine would: a client's
certificate does not pass for a server's, and each server has its own (M10); a
daemon's role reaches no database but its own, and role passwords reach PostgreSQL
only as SCRAM verifiers (L4). A second stack, brought up beside the test stack in a
folder the postgres user cannot reach, as root: a folder planted where PostgreSQL's
files used to go, with links in it to files of root's, is not used and nothing is
written through it, a cluster folder someone else could write to is refused (M7),
and no command line of the whole start holds a secret (M8). The SMTP server takes
mail only over STARTTLS from the notifier's user, and AUTH only after STARTTLS (M5).
The schema registry answers its clients in the identity provider's realm only, each
as its role allows, and deletes nothing (M9)."""
import base64
import glob
import hashlib
import json
import os
import pwd
import random
import re
import shutil
import smtplib
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import psycopg

from harness import (BUILD, CONFIG, MAILDIR, REGISTRY_URL, ROOT, SCHEMAS, SECRETS, SECURED, SERVICES, SMTP_PORT, check,
                     log, pg_connect, role, run, secret, stack_conf, token, wait_for)

CA = os.path.join(SECRETS, "ca.crt")


def openssl_verify(purpose, crt):
    out = subprocess.run(["openssl", "verify", "-CAfile", CA, "-purpose", purpose, crt], capture_output=True,
                         text=True, timeout=30)
    return out.returncode == 0


def cert_field(crt, *args):
    return subprocess.run(["openssl", "x509", "-in", crt, "-noout", *args], capture_output=True, text=True,
                          timeout=30, check=True).stdout


def handshake(name):
    """A TLS client that trusts the stack's CA (host names aside) against a server
    presenting certificate <name>: None when it is accepted, else the client's error."""
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(os.path.join(SECRETS, f"{name}.crt"), os.path.join(SECRETS, f"{name}.key"))
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]

    def serve():
        conn, _ = lsock.accept()
        try:
            srv.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    cli = ssl.create_default_context(cafile=CA)
    cli.check_hostname = False  # the purpose alone is tried here
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            cli.wrap_socket(s).close()
        return None
    except ssl.SSLError as e:
        return str(e)
    finally:
        t.join(10)
        lsock.close()


def certificates():
    """M10: client certificates are for clients only and name no host; each server's
    certificate is for a server only, with a name of its own; a TLS client refuses a
    client's certificate from a server even where the host name is not checked."""
    clients = sorted(f[:-4] for f in os.listdir(SECRETS) if f.startswith("kafka-") and f.endswith(".crt"))
    check({"kafka-admin", "kafka-frontend", "kafka-warehouse"} | {f"kafka-lmp-{s}" for s in SERVICES} <= set(clients),
          f"client certificates: {clients}")
    for name in clients:
        crt = os.path.join(SECRETS, f"{name}.crt")
        check(openssl_verify("sslclient", crt), f"{name} is no client certificate")
        check(not openssl_verify("sslserver", crt), f"{name}, a client's, passes as a server's certificate")
        check("Subject Alternative Name" not in cert_field(crt, "-text"), f"{name} names a host")
    servers = ["postgres", "registry", "keycloak", "smtp"] + [f"{s}-http" for s in SERVICES]
    subjects = set()
    for name in servers:
        crt = os.path.join(SECRETS, f"{name}.crt")
        check(openssl_verify("sslserver", crt), f"{name} is no server certificate")
        check(not openssl_verify("sslclient", crt), f"{name}, a server's, passes as a client certificate")
        subjects.add(cert_field(crt, "-subject").strip())
    check(len(subjects) == len(servers), f"servers share a subject: {sorted(subjects)}")
    err = handshake("kafka-frontend")
    check(err is not None and "purpose" in err, f"a server with the frontend's certificate: {err}")
    check(handshake("postgres") is None, "a server with the database's certificate is refused")
    log(f"certificates: {len(clients)} for clients only, {len(servers)} servers each its own; "
        f"the frontend's refused as a server's ({err})")


def pg_roles():
    """L4: a daemon's role may not connect to the maintenance database or the template,
    and every role's password is stored as a SCRAM verifier."""
    me = role("intake")
    for db in ("postgres", "template1"):
        try:
            pg_connect(db, me).close()
            check(False, f"{me} connected to {db}")
        except psycopg.OperationalError as e:
            check("permission denied" in str(e), f"{me} to {db}: {e}")
    with pg_connect("postgres") as c:
        rows = c.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolcanlogin").fetchall()
    check(rows and all(pw and pw.startswith("SCRAM-SHA-256$") for _, pw in rows),
          f"roles without a SCRAM verifier: {[r for r, pw in rows if not (pw or '').startswith('SCRAM-SHA-256$')]}")
    log(f"PostgreSQL: {me} refused by postgres and template1; {len(rows)} roles hold SCRAM verifiers")


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_base():
    """A Kafka port base for the second stack whose ports, and those it derives from
    it (the registry's and Keycloak's, + 88 to + 90, Jaeger's, + 91 to + 93), are
    free; PostgreSQL and SMTP take + 50 and + 51."""
    for _ in range(500):
        base = random.randrange(40000, 60000, 100)
        if all(port_free(base + o) for o in (0, 1, 2, 3, 50, 51, 88, 89, 90, 91, 92, 93)):
            return base
    raise AssertionError("no free ports for a second stack")


def shims(folder, log_file):
    """Programs of the same names ahead on PATH that write their command line to
    log_file and run the real one: every command deploy/stack runs by name."""
    os.makedirs(folder)
    for name in ("java", "psql", "curl", "openssl", "keytool", "python3", "runuser", "setsid", "nohup"):
        real = shutil.which(name)
        if real is None:
            continue
        path = os.path.join(folder, name)
        with open(path, "w") as fh:
            fh.write(f'#!/bin/sh\nprintf \'%s\\n\' "{name} $*" >>"{log_file}"\nexec "{real}" "$@"\n')
        os.chmod(path, 0o755)


class Sampler:
    """Every command line of every process, read from /proc ten times a second."""

    def __init__(self):
        self.seen = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.1):
            for f in glob.glob("/proc/[0-9]*/cmdline"):
                try:
                    with open(f, "rb") as fh:
                        line = fh.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if line:
                    self.seen.add(line)

    def close(self):
        self.stop.set()
        self.thread.join(10)
        return self.seen


def secret_values(secrets):
    """Every password, token and client secret a stack made: the long words of its
    secrets folder's files other than keys and certificates."""
    out = set()
    for f in os.listdir(secrets):
        if f.endswith((".crt", ".key", ".pem", ".srl", ".p12")):
            continue
        with open(os.path.join(secrets, f), errors="replace") as fh:
            out.update(re.findall(r"[A-Za-z0-9+/=_-]{16,}", fh.read()))
    return out


class SecondStack:
    """deploy/stack with its own folder, ports and environment."""

    def __init__(self, top):
        self.dir = os.path.join(top, "stack")
        base = free_base()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LMP_")}
        self.env.update(LMP_STACK_DIR=self.dir, LMP_KAFKA_PORT=str(base), LMP_PG_PORT=str(base + 50),
                        LMP_SMTP_PORT=str(base + 51), LMP_BUILD_DIR=BUILD)
        self.log = os.path.join(BUILD, "Testing", f"stack-hardening-{base}.log")

    def run(self, *args, env=None, ok=True):
        with open(self.log, "a") as fh:
            fh.write(f"== deploy/stack {' '.join(args)}\n")
        out = subprocess.run([os.path.join(ROOT, "deploy", "stack"), *args], env=env or self.env,
                             capture_output=True, text=True, timeout=400)
        with open(self.log, "a") as fh:
            fh.write(out.stdout + out.stderr)
        if ok:
            check(out.returncode == 0, f"deploy/stack {' '.join(args)}: {out.stderr[-800:]} (see {self.log})")
        return out

    def pg_base(self):
        line = [x for x in self.run("status", ok=False).stdout.splitlines() if x.startswith("postgres")][0]
        return os.path.dirname(line.split()[-1])


def planted(stack_dir, victims):
    """M7's attack: the folder the old deploy/stack used for a stack folder the postgres
    user cannot reach, made first by someone else, open to all, its file names links to
    files of root's."""
    old = "/var/tmp/lmp-postgres-" + hashlib.sha1(stack_dir.encode()).hexdigest()[:12]
    shutil.rmtree(old, ignore_errors=True)
    os.mkdir(old)
    os.chmod(old, 0o777)
    for name in ("initdb.log", "security", "pg_hba.conf", "server.key"):
        victim = os.path.join(victims, name)
        with open(victim, "w") as fh:
            fh.write("root's own file\n")
        os.symlink(victim, os.path.join(old, name))
    return old


def second_stack():
    """M7, M8 and L4's log, on a stack brought up beside the test stack."""
    check(os.geteuid() == 0, "this part runs as root, as the stack does on CI")
    top = tempfile.mkdtemp(prefix="lmp-hardening-")  # 0700: the postgres user cannot reach it
    victims = os.path.join(top, "victims")
    os.mkdir(victims)
    st = SecondStack(top)
    old = planted(st.dir, victims)
    argv_log = os.path.join(top, "argv.log")
    shims(os.path.join(top, "bin"), argv_log)
    env = dict(st.env, PATH=os.path.join(top, "bin") + ":" + os.environ["PATH"],
               PGOPTIONS="-c log_statement=all")  # every statement of the stack's psql in the server's log
    sampler = Sampler()
    try:
        started = time.time()
        st.run("up", env=env)
        seen = sampler.close()
        log(f"a second stack up in {time.time() - started:.0f} s, {len(seen)} command lines seen")

        # M7: the planted folder is not used, nothing was written through its links,
        # and the cluster's folder is root's or postgres' alone.
        for name in os.listdir(victims):
            with open(os.path.join(victims, name)) as fh:
                check(fh.read() == "root's own file\n", f"written through the planted link {name}")
        check(sorted(os.listdir(old)) == ["initdb.log", "pg_hba.conf", "security", "server.key"],
              f"the planted folder was used: {os.listdir(old)}")
        base = st.pg_base()
        info = os.lstat(base)
        check(stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and
              pwd.getpwuid(info.st_uid).pw_name == "postgres", f"{base}: mode {oct(info.st_mode)}, uid {info.st_uid}")
        check(not base.startswith("/var/tmp/") and os.stat(os.path.dirname(base)).st_mode & 0o022 == 0,
              f"the cluster's folder {base} is in a folder others may write to")
        log(f"PostgreSQL's files in {base} (0700); the planted {old} untouched, nothing written through its links")

        # M8: no secret of that stack was on any command line while it came up.
        secrets = secret_values(os.path.join(st.dir, "secrets"))
        with open(argv_log) as fh:
            argv = fh.read().splitlines()
        check(any("kafka.tools.StorageTool format" in a for a in argv), "the shims saw the SCRAM users made")
        leaks = [line[:120] for line in argv + sorted(seen) for v in secrets if v in line]
        check(not leaks, f"secrets on a command line: {leaks[:3]}")
        log(f"{len(secrets)} secrets on none of {len(argv)} commands run nor {len(seen)} command lines seen")

        # L4: with every statement logged, the role passwords went as verifiers.
        with open(os.path.join(base, "postgres.log"), errors="replace") as fh:
            pg_log = fh.read()
        check(re.search(r"ALTER ROLE lmp_intake PASSWORD 'SCRAM-SHA-256\$4096:", pg_log),
              "the statements were not logged")
        check(not [v for v in secrets if v in pg_log], "a password in PostgreSQL's log")
        log("PostgreSQL's log of every statement holds verifiers, no password")

        # M7: a cluster folder that someone else could write to is refused.
        st.run("down")
        for change, undo, what in ((lambda: os.chmod(base, 0o777), lambda: os.chmod(base, 0o700), "mode 777"),
                                   (lambda: os.chown(base, 65534, -1), lambda: shutil.chown(base, "postgres"),
                                    "owned by nobody")):
            change()
            out = st.run("pg-up", ok=False)
            undo()
            check(out.returncode != 0 and "refusing" in out.stderr, f"{what}: {out.returncode} {out.stderr[-300:]}")
        log("a cluster folder open to others, or another user's, is refused")

        # The cluster outlives the stack's folder: one an earlier stack at this path
        # made (here: the stack's superuser password made new, as a folder made again
        # would have it) is made anew, where it refused every password; the stack's own
        # cluster is kept.
        made = os.stat(os.path.join(base, "data", "PG_VERSION")).st_mtime
        with open(os.path.join(st.dir, "secrets", "pg-lmp.password"), "w") as fh:
            fh.write(f"{random.getrandbits(128):032x}\n")
        out = st.run("pg-up")
        check("making it anew" in out.stdout and os.stat(os.path.join(base, "data", "PG_VERSION")).st_mtime > made,
              f"a cluster an earlier stack made: {out.stdout[-300:]}")
        st.run("pg-down")
        made = os.stat(os.path.join(base, "data", "PG_VERSION")).st_mtime
        out = st.run("pg-up")
        check("making it anew" not in out.stdout and
              os.stat(os.path.join(base, "data", "PG_VERSION")).st_mtime == made, out.stdout[-300:])
        st.run("pg-down")
        log("a cluster that refuses the stack's password is made anew; the stack's own is kept")
    finally:
        sampler.close()
        st.run("reset", ok=False)
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(top, ignore_errors=True)


def mail_server():
    """The stack's SMTP server, its notifier's user and password, and its maildir, as
    the stack wrote them into the notifier's settings."""
    conf = stack_conf("notifier")
    check(conf.get("notifier.smtp_tls") == "required" and conf.get("notifier.smtp_ca_file") == CA and
          conf.get("notifier.smtp_username") == "lmp-notifier", f"the notifier's SMTP settings: {conf}")
    with open(conf["notifier.smtp_password_file"]) as fh:
        return SMTP_PORT, "lmp-notifier", fh.read().strip(), MAILDIR


def smtp():
    """M5, the stack's side: no mail in clear or without AUTH, no AUTH in clear; with
    STARTTLS (the stack's certificate, verified) and the notifier's user, a mail lands
    in the maildir the tests read."""
    port, user, password, maildir = mail_server()
    subject = f"hardening {random.getrandbits(64):x}"
    msg = f"From: lmp@lmp.example\r\nTo: nora@northwind.example\r\nSubject: {subject}\r\n\r\nhello\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
        c.ehlo()
        check("auth" not in c.esmtp_features and "starttls" in c.esmtp_features,
              f"before STARTTLS the server offers {c.esmtp_features}")
        code, text = c.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode())
        check(code == 530, f"AUTH before STARTTLS: {code} {text}")
        try:
            c.sendmail("lmp@lmp.example", ["nora@northwind.example"], msg)
            check(False, "a mail taken in clear")
        except smtplib.SMTPSenderRefused as e:
            check(e.smtp_code == 530, f"a mail in clear: {e}")
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
        c.starttls(context=ssl.create_default_context(cafile=CA))
        try:
            c.sendmail("lmp@lmp.example", ["nora@northwind.example"], msg)
            check(False, "a mail taken without AUTH")
        except smtplib.SMTPSenderRefused as e:
            check(e.smtp_code == 530, f"a mail without AUTH: {e}")
        try:
            c.login(user, password[::-1])
            check(False, "a wrong password taken")
        except smtplib.SMTPAuthenticationError:
            pass
        c.login(user, password)
        c.sendmail("lmp@lmp.example", ["nora@northwind.example"], msg)

    def landed():
        for f in os.listdir(maildir):
            with open(os.path.join(maildir, f), errors="replace") as fh:
                if subject in fh.read():
                    return f
    wait_for("the mail in the maildir", landed, timeout=20)
    log(f"SMTP: clear text and AUTH before STARTTLS refused (530), no mail without AUTH; "
        f"STARTTLS and {user} deliver into {maildir}")


def registry_call(method, path, body=None, user=None, bearer=None, api=REGISTRY_URL):
    """One call to the stack's registry as a client of the realm (registry-<user>, by
    HTTP basic authentication), with a bearer token, or anonymous: (status, answer)."""
    h = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    if user:
        h["Authorization"] = "Basic " + base64.b64encode(
            f"registry-{user}:{secret(f'registry-{user}.password')}".encode()).decode()
    if bearer:
        h["Authorization"] = f"Bearer {bearer}"
    req = urllib.request.Request(api + path, data=body.encode() if body else None, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30, context=ssl.create_default_context(cafile=CA)) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")[:200]


def registry():
    """M9, the registry's half: no anonymous read or write, no partner's token; the
    operator's client registers and a daemon's client reads and looks its schemas' ids
    up, and may not register, delete a subject or change its compatibility (its role is
    sr-readonly; Apicurio's Confluent API deletes whatever its deletion switches say, so
    the role is what refuses)."""
    subject = f"it.hardening.{random.getrandbits(48):x}.onboarding.requested-value"
    schema = json.dumps({"schema": SCHEMAS["onboarding.requested"]["json"]})
    for method, path, body in (("GET", "/subjects", None), ("GET", "/schemas/ids/1", None),
                               ("POST", f"/subjects/{subject}/versions", schema)):
        code, _ = registry_call(method, path, body)
        check(code == 401, f"anonymous {method} {path}: {code}")
    code, _ = registry_call("GET", "/subjects", bearer=token())
    check(code in (401, 403), f"a partner's token reads the registry: {code}")
    code, answer = registry_call("POST", f"/subjects/{subject}/versions", schema, user="admin")
    check(code == 200 and isinstance(answer, dict) and "id" in answer, f"the operator registers: {code} {answer}")
    sid = answer["id"]
    code, answer = registry_call("GET", f"/schemas/ids/{sid}", user="intake")
    check(code == 200 and "schema" in answer, f"a daemon reads a schema: {code} {answer}")
    code, answer = registry_call("GET", "/subjects", user="intake")
    check(code == 200 and subject in answer, f"a daemon lists the subjects: {code}")
    code, answer = registry_call("POST", f"/subjects/{subject}", schema, user="intake")
    check(code == 200 and isinstance(answer, dict) and answer.get("id") == sid, f"a daemon looks the id up: {code}")
    other = json.dumps({"schema": SCHEMAS["shipment.dispatched"]["json"]})
    for method, path, body in (("POST", f"/subjects/{subject}/versions", other),
                               ("POST", f"/subjects/{subject.replace('requested', 'other')}/versions", schema),
                               ("PUT", f"/config/{subject}", json.dumps({"compatibility": "NONE"})),
                               ("DELETE", f"/subjects/{subject}", None),
                               ("DELETE", f"/subjects/{subject}/versions/1", None)):
        code, answer = registry_call(method, path, body, user="notifier")
        check(code == 403, f"a daemon's client: {method} {path} answered {code} {answer}")
    code, answer = registry_call("GET", f"/subjects/{subject}/versions", user="admin")
    check(code == 200 and answer == [1], f"the subject as the operator registered it: {code} {answer}")
    log("registry: anonymous 401, a partner's token refused; the operator registers; a daemon reads and looks "
        "up, and may not register, delete or change compatibility (403)")


def test_stack_hardening(ns):
    check(SECURED, "the stack is secured")
    certificates()
    pg_roles()
    registry()
    smtp()
    second_stack()


if __name__ == "__main__":
    sys.exit(run(test_stack_hardening))
