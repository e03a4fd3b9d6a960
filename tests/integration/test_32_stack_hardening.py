"""The local stack itself, tried as an attacker on the same machine would: a client's
certificate does not pass for a server's, and each server has its own (M10); a
daemon's role reaches no database but its own, and role passwords reach PostgreSQL
only as SCRAM verifiers (L4)."""
import os
import socket
import ssl
import subprocess
import sys
import threading

import psycopg

from harness import SECRETS, SECURED, SERVICES, check, log, pg_connect, role, run

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
    check(len(clients) == 3 + len(SERVICES), f"client certificates: {clients}")
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


def test_stack_hardening(ns):
    check(SECURED, "the stack is secured")
    certificates()
    pg_roles()


if __name__ == "__main__":
    sys.exit(run(test_stack_hardening))
