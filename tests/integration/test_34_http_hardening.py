"""HTTP hardening: a listener given a certificate serves HTTPS that a test CA verifies
and answers no plain HTTP, lmpctl reaches an admin listener over HTTPS with its CA, and
a key that does not match or that others may read stops the daemon with the reason;
thirty-two stalled uploads from one address refuse neither another address's front-door
POST nor an admin load; the probe listener answers while the public listener's
connections are all taken; a client trickling its body is dropped after the window;
an admin tokens file that is removed or emptied revokes its tokens, a token longer
than the limit is left out (not cut to fit) with a log line, a read token may not
load and another daemon's token is none, and every authenticated admin request is
audited, a 404 too."""
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid

from harness import (BUILD, DEMO_DATA, SECRETS, SECURED, check, connect, example, http_get, http_post, log, run, secret,
                     token, wait_for)

DOOR_LIMIT = 256 * 1024  # the front door's body limit (services/intake/door.c)
LOAD_LIMIT = 1024 * 1024  # an admin load's
NOT_A_TOKEN = "Bearer aaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbb.cccccccccccccccc"  # shaped as a JWT, signed by nobody


def work(ns, name):
    return os.path.join(BUILD, "Testing", f"{ns.db}-{name}")


def write(path, text, mode=None):
    with open(path, "w") as fh:
        fh.write(text)
    if mode is not None:
        os.chmod(path, mode)
    return path


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def test_ca(base):
    """A CA of the test's own, a server certificate it signed for 127.0.0.1, and a key
    that is not that certificate's."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", "-new", *ec, "-days", "2", "-subj", "/CN=test CA", "-keyout", base + "-ca.key",
            "-out", base + "-ca.crt")
    openssl("req", "-new", *ec, "-subj", "/CN=127.0.0.1", "-keyout", base + "-server.key", "-out", base + "-server.csr")
    ext = write(base + "-server.ext", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", base + "-server.csr", "-CA", base + "-ca.crt", "-CAkey", base + "-ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", base + "-server.crt")
    openssl("req", "-new", *ec, "-subj", "/CN=other", "-keyout", base + "-other.key", "-out", base + "-other.csr")
    for key in ("-server.key", "-other.key", "-ca.key"):
        os.chmod(base + key, 0o600)
    return base + "-ca.crt", base + "-server.crt", base + "-server.key", base + "-other.key"


def https_get(url, cafile, token_=None):
    ctx = ssl.create_default_context(cafile=cafile)
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token_}"} if token_ else {})
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def refused_at_start(ns, says, **env):
    """A daemon that stops at once with exit status 1 and says why."""
    out = subprocess.run([os.path.join(BUILD, "services", "intake", "lmp-intake")],
                         env=ns.env("intake", LMP_HTTP_PORT=0, LMP_ADMIN_PORT=0, **env),
                         capture_output=True, text=True, timeout=60)
    check(out.returncode == 1 and says in out.stdout + out.stderr,
          f"{env}: exit {out.returncode}, want '{says}' in {out.stdout[-2000:]}{out.stderr[-2000:]}")


def tls(ns):
    ca, crt, key, other = test_ca(work(ns, "tls"))
    p = ns.start("intake", wait_ready=False, LMP_KAFKA_GROUP_ID="tls-" + ns.prefix,
                 LMP_HTTP_TLS_CERT_FILE=crt, LMP_HTTP_TLS_KEY_FILE=key,
                 LMP_ADMIN_TLS_CERT_FILE=crt, LMP_ADMIN_TLS_KEY_FILE=key)
    public, admin = p.http, p.admin  # https://: the harness reads the settings it was given
    wait_for("/readyz over HTTPS", lambda: https_get(public + "/readyz", ca)[0] == 200)
    # The certificate is verified by the test CA (and its name, 127.0.0.1) ...
    code, _ = https_get(public + "/healthz", ca)
    check(code == 200, f"https /healthz: {code}")
    # ... and plain HTTP gets no answer on either listener.
    for url in (p.http, p.admin):
        code, body = http_get(url.replace("https://", "http://") + "/healthz")
        check(code == 0, f"plain HTTP to a TLS listener answered {code} {body[:80]!r}")
    # lmpctl reaches the admin listener over HTTPS with ctl.ca_file, and not without it.
    lmpctl = os.path.join(BUILD, "tools", "lmpctl")
    oid = str(uuid.uuid4())
    out = subprocess.run([lmpctl, "admin", "get", "intake", f"/v1/onboardings/{oid}"], capture_output=True, text=True,
                         env=ns.ctl_env(LMP_INTAKE_ADMIN_URL=admin, LMP_CTL_CA_FILE=ca), timeout=60)
    check('"error"' in out.stdout, f"lmpctl over HTTPS: {out.returncode} {out.stdout} {out.stderr}")
    wait_for("the admin answer audited", lambda: f"GET /v1/onboardings/{oid} -> 404" in open(p.logfile).read())
    out = subprocess.run([lmpctl, "admin", "get", "intake", f"/v1/onboardings/{oid}"], capture_output=True, text=True,
                         env=ns.ctl_env(LMP_INTAKE_ADMIN_URL=admin), timeout=60)
    check(out.returncode != 0 and "certificate" in out.stderr, f"lmpctl without the CA: {out.stdout} {out.stderr}")
    p.terminate()
    p.wait(30)
    # A pair the daemon cannot serve stops it with the reason.
    refused_at_start(ns, "do not match", LMP_HTTP_TLS_CERT_FILE=crt, LMP_HTTP_TLS_KEY_FILE=other)
    shared = write(work(ns, "tls-shared.key"), open(key).read(), mode=0o644)
    refused_at_start(ns, "may be read or written by others", LMP_ADMIN_TLS_CERT_FILE=crt,
                     LMP_ADMIN_TLS_KEY_FILE=shared)
    out = subprocess.run([os.path.join(BUILD, "services", "intake", "lmp-intake"), "--check-config"],
                         env=ns.env("intake", LMP_HTTP_TLS_CERT_FILE=crt, LMP_HTTP_TLS_KEY_FILE=""),
                         capture_output=True, text=True)
    check(out.returncode == 2 and "set both" in out.stderr, out.stderr)
    log("TLS: HTTPS verified by the test CA, plain HTTP unanswered, lmpctl over HTTPS, bad pairs refused")

    # The secured stack's own settings: both listeners over HTTPS, verified by the
    # stack's CA under the daemon's own name, and deaf to plain HTTP.
    if SECURED:
        q = ns.start("intake", LMP_KAFKA_GROUP_ID="stack-tls-" + ns.prefix)
        check(q.http.startswith("https://") and q.admin.startswith("https://"), f"{q.http} {q.admin}")
        ca = os.path.join(SECRETS, "ca.crt")
        check(https_get(q.http + "/readyz", ca)[0] == 200, "the stack's intake over HTTPS")
        check(https_get(q.admin + "/v1/nowhere", ca, secret("admin-token"))[0] == 404, "its admin over HTTPS")
        for url in (q.http, q.admin):
            code, body = http_get(url.replace("https://", "http://") + "/healthz")
            check(code == 0, f"plain HTTP to the stack's {url} answered {code} {body[:80]!r}")
        with open(os.path.join(SECRETS, "intake-http.crt")) as fh:
            want = ssl.PEM_cert_to_DER_cert(fh.read())
        with connect(q.http) as s:
            check(s.getpeercert(binary_form=True) == want, "intake serves another certificate than its own")
        q.terminate()
        q.wait(30)
        log("TLS: the stack's daemons serve both listeners over HTTPS with their own certificate")


def stall(url, path, length, n, source, auth):
    """n uploads from source that announce length bytes, send 1 KiB and stall."""
    out = []
    for _ in range(n):
        s = connect(url, source)
        s.send(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: {auth}\r\n"
               f"Content-Length: {length}\r\n\r\n".encode() + b" " * 1024)
        out.append(s)
    return out


def half_open(url, n, source):
    """n connections from source that never finish their request's headers."""
    out = []
    for _ in range(n):
        s = connect(url, source)
        s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        out.append(s)
    return out


def door_post(url, request):
    return http_post(url + "/v1/onboardings", request, token=token(), timeout=60)


def availability(ns):
    # Stalls last: the idle timeout is long, so only the budgets and the rate decide.
    p = ns.start("intake", LMP_KAFKA_GROUP_ID="avail-" + ns.prefix, LMP_PROBE_BIND="127.0.0.1",
                 LMP_HTTP_MAX_CONNECTIONS=64, LMP_HTTP_TIMEOUT_S=60, LMP_HTTP_MIN_RATE_WINDOW_S=3)
    # 1. Thirty-two stalled front-door uploads from one address (as many connections as
    # it may open), each announcing the door's limit: 8 MiB, the whole default budget.
    stalled = stall(p.http, "/v1/onboardings", DOOR_LIMIT, 32, "127.0.0.2", NOT_A_TOKEN)
    time.sleep(0.5)
    code, body = door_post(p.http, example("virtual-core.json"))
    check(code == 202, f"another address's POST while one address stalls 32 uploads: {code} {body}")

    # 2. Every public connection taken: the probe listener still answers, at once.
    m = wait_for("the probe listener's port in the log",
                 lambda: re.search(r"probes on 127\.0\.0\.1:(\d+)", open(p.logfile).read()))
    probes = f"http://127.0.0.1:{m.group(1)}"
    code, body = http_get(probes + "/v1/form")
    check(code == 404, f"the probe listener serves probes only: {code}")
    crowd = half_open(p.http, 32, "127.0.0.3")
    time.sleep(0.5)
    code, _ = http_get(p.http + "/healthz")
    check(code == 0, f"the public listener should be full: /healthz answered {code}")
    for path in ("/healthz", "/readyz", "/metrics"):
        t0 = time.time()
        code, body = http_get(probes + path)
        check(code == 200 and time.time() - t0 < 2, f"probe {path} with the public listener full: {code} {body[:80]}")
    for s in stalled + crowd:
        s.close()

    # 3. A body trickled a byte at a time is dropped after the window (3 s here), long
    # before the idle timeout (60 s here) would close it.
    s = connect(p.http, "127.0.0.4")
    s.send(f"POST /v1/onboardings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: "
           f"{NOT_A_TOKEN}\r\nContent-Length: 100000\r\n\r\n".encode())
    s.settimeout(0.5)
    t0, dropped = time.time(), None
    while dropped is None and time.time() - t0 < 12:
        try:
            s.send(b" ")
            if s.recv(100) == b"":
                dropped = time.time() - t0
        except socket.timeout:
            pass
        except OSError:
            dropped = time.time() - t0
    s.close()
    check(dropped is not None and dropped < 9, f"a trickling client was not dropped in 12 s ({dropped})")
    wait_for("the drop in the log", lambda: "from 127.0.0.4 dropped: its body came slower than 1024 bytes/s" in
             open(p.logfile).read())
    code, body = door_post(p.http, example("virtual-core.json"))
    check(code == 202, f"a POST after the attack: {code} {body}")
    log(f"availability: 32 stalled uploads refuse no one else; probes answer with the public listener full; "
        f"a trickler dropped after {dropped:.1f} s")


def admin_tokens(ns):
    tokens = work(ns, "tokens")
    too_long = "x" * 300
    reader, elsewhere = uuid.uuid4().hex, uuid.uuid4().hex
    write(tokens, f"operator {secret('admin-token')}\nlong {too_long}\nreader {reader} allocation:read\n"
                  f"elsewhere {elsewhere} shipping:write\n")
    p = ns.start("allocation", LMP_ADMIN_TOKENS_FILE=tokens, LMP_HTTP_TIMEOUT_S=60)
    with open(DEMO_DATA) as fh:
        reference = json.load(fh)["allocation"]
    pools = lambda: http_get(p.admin + "/v1/pools/partner-northwind", token=secret("admin-token"))[0]  # noqa: E731
    check(pools() == 404, "the operator's token works (no pools are loaded yet: 404, not 401)")

    # 1. Thirty-two stalled admin loads from one address: another address's load is taken.
    stalled = stall(p.admin, "/v1/admin/load", LOAD_LIMIT, 32, "127.0.0.2", "Bearer " + secret("admin-token"))
    time.sleep(0.5)
    code, body = http_post(p.admin + "/v1/admin/load", reference, token=secret("admin-token"), timeout=60)
    check(code == 200, f"an admin load while one address stalls 32 loads: {code} {body}")
    for s in stalled:
        s.close()

    # 2. A token longer than the limit is left out, not cut to fit, and said so.
    for t in (too_long, too_long[:255]):
        code, _ = http_get(p.admin + "/v1/pools/partner-northwind", token=t)
        check(code == 401, f"a token of {len(t)} characters: {code}")
    check("line 2 has a token longer than 255 characters: left out" in open(p.logfile).read(), "the long token logged")

    # 3. Scopes: a read token reads and may not load; a token for another daemon is none here.
    check(http_get(p.admin + "/v1/pools/partner-northwind", token=reader)[0] == 200, "a read token reads")
    code, body = http_post(p.admin + "/v1/admin/load", reference, token=reader)
    check(code == 403, f"a read token loads: {code} {body}")
    check(http_get(p.admin + "/v1/pools/partner-northwind", token=elsewhere)[0] == 401, "another daemon's token")

    # 4. Every authenticated request is audited, whatever its answer.
    code, _ = http_get(p.admin + "/v1/nowhere", token=secret("admin-token"))
    check(code == 404, f"an unknown admin path: {code}")
    wait_for("the 404 audited", lambda: '"audit: token:operator from 127.0.0.1: GET /v1/nowhere -> 404' in
             open(p.logfile).read())

    # 5. Removing the file revokes its tokens; writing it again restores them; emptying
    # it revokes them again.
    os.rename(tokens, tokens + ".away")
    check(pools() == 401, "a removed tokens file still grants")
    check("no admin token is in effect" in open(p.logfile).read(), "the revocation is logged")
    os.rename(tokens + ".away", tokens)
    check(pools() == 200, "the tokens file written back")
    write(tokens, "")
    check(pools() == 401, "an emptied tokens file still grants")
    log("admin: a load taken while one address stalls 32; long tokens refused; scopes held; a 404 audited; "
        "removed and emptied token files revoke")


def test_http_hardening(ns):
    tls(ns)
    availability(ns)
    admin_tokens(ns)


if __name__ == "__main__":
    sys.exit(run(test_http_hardening))
