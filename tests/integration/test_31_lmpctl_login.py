"""lmpctl login, against the stack's real Keycloak: a script signs a demo partner's user
in with the password grant (the password on standard input), whoami names the partner,
and `submit --door --wait` posts a request to intake's front door with the stored
access token and follows it to CONFIRMED; an access token about to expire is renewed
with the refresh token, and a refresh the issuer refuses says to sign in again. The
token file is 0600 in a 0700 directory lmpctl made. A person signs in with the device
grant: lmpctl prints the address and the code, the test approves them as a person
would in a browser (Keycloak's login form, then its grant page, with plain HTTP and
cookies), and lmpctl says who signed in; declining on the grant page exits 3. An
issuer of the test's own answers the polls with authorization_pending, slow_down and
expired_token: lmpctl waits the interval, 5 s more after slow_down, and exits 4. Bad
input: a wrong password exits 3 with Keycloak's message, an empty stdin and unknown
options exit 2, an issuer that does not answer and token files that are not JSON, not
lmpctl's or a symbolic link are refused, and are left alone. logout ends the session
at Keycloak (the refresh token no longer works) and removes the file."""
import http.cookiejar
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

from harness import BUILD, EXAMPLES, ISSUER, SECRETS, SECURED, _ssl_context, check, demo_logins, log, run, wait_for

NORTH, EAST = "partner-northwind", "partner-eastwind"
LMPCTL = os.path.join(BUILD, "tools", "lmpctl")


class Forms(HTMLParser):
    """The forms of a page: id, action, fields (name -> value) and named buttons."""

    def __init__(self, text):
        super().__init__()
        self.forms = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"id": a.get("id"), "action": a.get("action") or "", "fields": {}, "buttons": {}})
        elif self.forms and a.get("name") and tag in ("input", "button"):
            kind = "buttons" if tag == "button" or a.get("type") == "submit" else "fields"
            self.forms[-1][kind][a["name"]] = a.get("value") or ""


def text_of(page):
    """A page's words, for a failure message."""
    page = re.sub(r"(?s)<(script|style|head)\b.*?</\1>", " ", page)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)).strip()[:400]


def approve(uri, user, password, accept=True):
    """What a person does in a browser: open the address lmpctl printed, sign in on
    Keycloak's login form, then grant (or decline) on its grant page. The final page."""
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPSHandler(context=_ssl_context()),
                                          urllib.request.HTTPCookieProcessor(jar))

    def go(url, fields=None):
        data = None if fields is None else urllib.parse.urlencode(fields).encode()
        with browser.open(urllib.request.Request(url, data=data), timeout=30) as r:
            return r.geturl(), r.read().decode()

    url, page = go(uri)
    login = next((f for f in Forms(page).forms if f["id"] == "kc-form-login"), None)
    check(login is not None, f"no login form at {uri}: {text_of(page)}")
    url, page = go(urllib.parse.urljoin(url, login["action"]), dict(login["fields"], username=user,
                                                                    password=password))
    grant = next((f for f in Forms(page).forms if "accept" in f["buttons"]), None)
    if grant is not None:
        url, page = go(urllib.parse.urljoin(url, grant["action"]),
                       dict(grant["fields"], **({"accept": "Yes"} if accept else {"cancel": "No"})))
    elif not accept:
        check(False, f"no grant page to decline after signing in: {text_of(page)}")
    return text_of(page)


class Lmpctl:
    """lmpctl as a partner's user: the namespace's settings, the stack's issuer, and a
    home and cache of the test's own (so the default token file lies in it)."""

    def __init__(self, ns, home):
        self.home = home
        self.env = ns.ctl_env(HOME=home, XDG_CACHE_HOME=os.path.join(home, "cache"), LMP_OIDC_ISSUER=ISSUER,
                              LMP_OIDC_CA_FILE=os.path.join(SECRETS, "ca.crt") if SECURED else "",
                              LMP_OIDC_CLIENT_ID="lmp-cli")
        self.env.pop("LMP_CTL_TOKEN_FILE", None)
        self.env.pop("LMP_CTL_OIDC_CLIENT_ID", None)
        self.token_file = os.path.join(home, "cache", "lmpctl", "token.json")

    def __call__(self, *args, input=None, timeout=120, **env):
        out = subprocess.run([LMPCTL, *args], env=dict(self.env, **env), input=input, capture_output=True,
                             text=True, timeout=timeout)
        return out.returncode, out.stdout, out.stderr

    def start(self, *args):
        """lmpctl running on: its stderr lines gathered as they come."""
        p = subprocess.Popen([LMPCTL, *args], env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        p.lines = []
        p.reader = threading.Thread(target=lambda: p.lines.extend(iter(p.stderr.readline, "")), daemon=True)
        p.reader.start()
        return p

    def stored(self):
        with open(self.token_file) as fh:
            return json.load(fh)

    def store(self, text):
        """Rewrites the token file in place (its mode stays)."""
        with open(self.token_file, "w") as fh:
            fh.write(text if isinstance(text, str) else json.dumps(text))


def device_login(ctl, user, password, accept=True):
    """lmpctl login without a username: the address it prints, approved as a person
    would; lmpctl's exit status, stdout and stderr."""
    p = ctl.start("login")
    try:
        shown = wait_for("lmpctl's sign-in address and code",
                         lambda: "".join(p.lines) if re.search(r"enter the code \S+", "".join(p.lines)) else None,
                         timeout=30, show=lambda: "".join(p.lines) or f"exit {p.poll()}")
        uri = re.search(r"To sign in, open (\S+)", shown).group(1)
        code = re.search(r"enter the code (\S+)", shown).group(1)
        plain = re.search(r"or open (\S+) and enter", shown).group(1)
        check(code in uri and uri.startswith(plain) and plain.startswith(ISSUER), f"lmpctl printed: {shown}")
        page = approve(uri, user, password, accept)
        p.wait(timeout=60)
        out = p.stdout.read()
        p.reader.join(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, out, "".join(p.lines), page


def refresh_works(refresh_token):
    """Whether Keycloak still renews with this refresh token."""
    body = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token,
                                   "client_id": "lmp-cli"}).encode()
    req = urllib.request.Request(f"{ISSUER}/protocol/openid-connect/token", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30, context=_ssl_context()) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


class FakeIssuer:
    """An issuer of the test's own, in plain HTTP, that answers the device grant's polls
    as told (then expired_token), and records when each came and what it said."""

    def __init__(self, answers, names=None):
        self.answers, self.calls = list(answers), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/realms/fake/.well-known/openid-configuration":
                    return self.reply(404, {})
                self.reply(200, {"issuer": names or outer.issuer, "token_endpoint": outer.issuer + "/token",
                                 "device_authorization_endpoint": outer.issuer + "/device"})

            def do_POST(self):
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                outer.calls.append((time.time(), self.path.rsplit("/", 1)[1], form))
                if self.path.endswith("/device"):
                    return self.reply(200, {"device_code": "dc-1", "user_code": "FAKE-CODE", "expires_in": 60,
                                            "verification_uri": outer.issuer + "/device", "interval": 1})
                self.reply(*(outer.answers.pop(0) if outer.answers else (400, {"error": "expired_token"})))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}/realms/fake"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lmpctl_login(ns):
    t0 = time.time()
    ns.start_all()
    home = tempfile.mkdtemp(prefix="lmpctl-login-")
    try:
        sign_in_and_out(ns, Lmpctl(ns, home))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    log(f"{time.time() - t0:.0f} s in all")


def sign_in_and_out(ns, ctl):
    logins = demo_logins()
    nora, nora_pw = logins[NORTH]
    erin, erin_pw = logins[EAST]
    home = ctl.home

    # ---- the password grant, for scripts ----------------------------------------------
    rc, out, err = ctl("login", nora, "--password-stdin", input=nora_pw + "\n")
    check(rc == 0 and f"signed in as {nora} <" in out and f"for {NORTH}" in out, f"login: {rc} {out} {err}")
    check(nora_pw not in out + err, "the password is never shown")
    st = os.stat(ctl.token_file)
    dst = os.stat(os.path.dirname(ctl.token_file))
    check(stat.S_IMODE(st.st_mode) == 0o600 and stat.S_IMODE(dst.st_mode) == 0o700,
          f"token file mode {oct(st.st_mode)}, its directory {oct(dst.st_mode)}")
    saved = ctl.stored()
    check(saved["format"] == "lmpctl-token/1" and saved["issuer"] == ISSUER and saved["client_id"] == "lmp-cli"
          and saved["access_token"] and saved["refresh_token"] and saved["expires_at"] > time.time() + 60,
          f"the stored session: { {k: v for k, v in saved.items() if 'token' not in k} }")
    check(nora_pw not in open(ctl.token_file).read(), "the password is not stored")

    rc, out, err = ctl("whoami")
    check(rc == 0 and nora in out and NORTH in out and "expires" in out and ctl.token_file in out,
          f"whoami: {rc} {out} {err}")
    rc, out, err = ctl("whoami", "--json")
    who = json.loads(out)
    check(rc == 0 and who["username"] == nora and who["partner_id"] == NORTH and who["expires_at"] == saved[
        "expires_at"], f"whoami --json: {rc} {out} {err}")
    log("password grant: signed in, token file 0600 in a 0700 directory, whoami names the partner")

    # ---- submit --door: the front door, as the signed-in partner -------------------------
    example = os.path.join(EXAMPLES, "virtual-core.json")
    rc, out, err = ctl("submit", example, "--door", "--new-id", "--wait", "60",
                       "--set", f"customer.legal_name=Harbourview Dental {ns.prefix}")
    m = re.search(r"submitted (\S+) through the front door as (.*)", err)
    check(rc == 0 and m and f"onboarding {m.group(1)}  CONFIRMED" in out and f"partner   {NORTH}" in out,
          f"submit --door --wait: {rc} {out} {err}")
    oid = m.group(1)
    rc, out, err = ctl("status", oid, "--door")
    check(rc == 0 and f"onboarding {oid}  CONFIRMED" in out, f"status --door: {rc} {out} {err}")
    out = ns.lmpctl("status", oid).stdout  # the operator's view, on the admin listener, unchanged
    check(f"onboarding {oid}  CONFIRMED" in out, f"lmpctl status as the operator: {out}")
    rows = ns.sql("SELECT request->>'partner_id', request->>'submitted_by' FROM onboardings WHERE onboarding_id = %s",
                  oid)
    check(rows == [(NORTH, f"{nora}@northwind.example")], f"the request as intake stored it: {rows}")
    log(f"submit --door --wait: {oid} confirmed, for {NORTH}, submitted by the signed-in user")

    # An access token about to expire is renewed with the refresh token first.
    ctl.store(dict(saved, expires_at=int(time.time()) + 10))
    rc, out, err = ctl("submit", example, "--door", "--new-id", "--set", f"customer.legal_name=Renewed {ns.prefix}")
    renewed = ctl.stored()
    check(rc == 0 and re.fullmatch(r"[0-9a-f-]{36}\n", out), f"submit --door with a renewed token: {rc} {out} {err}")
    check(renewed["access_token"] != saved["access_token"] and renewed["expires_at"] > time.time() + 60 and
          stat.S_IMODE(os.stat(ctl.token_file).st_mode) == 0o600, "the renewed token is stored, 0600")
    # A refresh the issuer refuses says to sign in again.
    ctl.store(dict(renewed, expires_at=int(time.time()) - 5, refresh_token="not-a-refresh-token"))
    rc, out, err = ctl("submit", example, "--door", "--new-id")
    check(rc == 1 and "could not be renewed" in err and "run lmpctl login" in err, f"refused refresh: {rc} {err}")
    ctl.store(renewed)
    log("an expiring access token renewed with the refresh token; a refused refresh says run lmpctl login")

    # ---- bad input ----------------------------------------------------------------------
    rc, out, err = ctl("login", nora, "--password-stdin", input="not her password\n")
    check(rc == 3 and "Invalid user credentials" in err, f"wrong password: {rc} {out} {err}")
    check(ctl.stored() == renewed, "a failed login leaves the stored session as it was")
    rc, out, err = ctl("login", nora, "--password-stdin", input="")
    check(rc == 2 and "held no password" in err, f"empty stdin: {rc} {err}")
    rc, out, err = ctl("login", nora)
    check(rc == 2 and "--password-stdin" in err, f"a username without --password-stdin: {rc} {err}")
    rc, out, err = ctl("login", "--pasword-stdin")
    check(rc == 2 and "unknown option '--pasword-stdin'" in err, f"unknown option: {rc} {err}")
    rc, out, err = ctl("login", LMP_OIDC_ISSUER="")
    check(rc == 2 and "oidc.issuer is not set" in err, f"no issuer: {rc} {err}")
    nowhere = f"https://127.0.0.1:{free_port()}/realms/lmp"
    rc, out, err = ctl("login", nora, "--password-stdin", input=nora_pw + "\n", LMP_OIDC_ISSUER=nowhere)
    check(rc == 1 and f"the issuer {nowhere} does not answer" in err, f"an issuer that does not answer: {rc} {err}")

    for content, why in (("{not json", "not JSON"), ('{"access_token": "x"}', "no \"format\"")):
        ctl.store(content)
        for args in (("whoami",), ("submit", example, "--door"), ("logout",)):
            rc, out, err = ctl(*args)
            check(rc == 1 and "is not an lmpctl token file" in err and why in err,
                  f"{' '.join(args)} with a token file of {content}: {rc} {out} {err}")
        rc, out, err = ctl("login", nora, "--password-stdin", input=nora_pw + "\n")
        check(rc == 1 and "is not an lmpctl token file" in err, f"login over a file not lmpctl's: {rc} {err}")
        check(open(ctl.token_file).read() == content, "a file not lmpctl's is left alone")
    os.unlink(ctl.token_file)
    elsewhere = os.path.join(home, "elsewhere.json")
    with open(elsewhere, "w") as fh:
        json.dump(renewed, fh)
    os.chmod(elsewhere, 0o600)
    os.symlink(elsewhere, ctl.token_file)
    rc, out, err = ctl("whoami")
    check(rc == 1 and "is a symbolic link" in err, f"a token file that is a symbolic link: {rc} {err}")
    os.unlink(ctl.token_file)
    rc, out, err = ctl("whoami")
    check(rc == 1 and "not signed in" in err and "run lmpctl login" in err, f"whoami signed out: {rc} {err}")
    log("refused: a wrong password (3), empty stdin and unknown options (2), a silent issuer, token files "
        "not JSON, not lmpctl's or a link, each left alone")

    # ---- the device grant, for a person -------------------------------------------------
    # The polls, against an issuer of the test's own: the interval, slow_down, expired_token.
    fake = FakeIssuer([(400, {"error": "authorization_pending"}), (400, {"error": "slow_down"})])
    try:
        rc, out, err = ctl("login", LMP_OIDC_ISSUER=fake.issuer, LMP_OIDC_CA_FILE="",
                           LMP_OIDC_CLIENT_ID="lmp-cli-alias")
        times = [t for t, path, _ in fake.calls]
        check(rc == 4 and "FAKE-CODE" in err and "expired before anybody approved it" in err and
              [path for _, path, _ in fake.calls] == ["device", "token", "token", "token"],
              f"device grant ending in expired_token: {rc} {err} {fake.calls}")
        gaps = [b - a for a, b in zip(times, times[1:])]
        check(gaps[0] >= 0.9 and gaps[1] >= 0.9 and gaps[2] >= 5.9, f"seconds between the polls: {gaps}")
        polls = [form for _, path, form in fake.calls if path == "token"]
        check(all(f == {"grant_type": ["urn:ietf:params:oauth:grant-type:device_code"], "device_code": ["dc-1"],
                        "client_id": ["lmp-cli-alias"]} for f in polls), f"the polls: {polls}")
        check(not os.path.exists(ctl.token_file), "nothing stored")
    finally:
        fake.close()
    liar = FakeIssuer([], names="https://127.0.0.1:1/realms/other")
    try:
        rc, out, err = ctl("login", LMP_OIDC_ISSUER=liar.issuer, LMP_OIDC_CA_FILE="")
        check(rc == 1 and "names the issuer 'https://127.0.0.1:1/realms/other'" in err and liar.calls == [],
              f"an issuer whose discovery names another: {rc} {err}")
    finally:
        liar.close()
    log("device grant polls: the interval, 5 s more after slow_down, expired_token exits 4; "
        "LMP_OIDC_CLIENT_ID read; a discovery document naming another issuer refused")

    rc, out, err, page = device_login(ctl, erin, erin_pw, accept=False)
    check(rc == 3 and "declined" in err and not os.path.exists(ctl.token_file),
          f"declined on the grant page: {rc} {out} {err} (page: {page})")
    rc, out, err, page = device_login(ctl, erin, erin_pw)
    check(rc == 0 and f"signed in as {erin} <" in out and f"for {EAST}" in out,
          f"device grant: {rc} {out} {err} (page: {page})")
    check(stat.S_IMODE(os.stat(ctl.token_file).st_mode) == 0o600, "the token file of the device grant is 0600")
    rc, out, err = ctl("whoami", "--json")
    check(rc == 0 and json.loads(out)["partner_id"] == EAST, f"whoami after the device grant: {rc} {out} {err}")
    log("device grant: the address and code printed, approved in the browser's way, erin signed in; "
        "declined is exit 3")

    # ---- logout ------------------------------------------------------------------------
    refresh = ctl.stored()["refresh_token"]
    check(refresh_works(refresh), "the stored refresh token works before logout")
    rc, out, err = ctl("logout")
    check(rc == 0 and "session" in out and "ended" in out and not os.path.exists(ctl.token_file),
          f"logout: {rc} {out} {err}")
    check(not refresh_works(refresh), "after logout the refresh token no longer works at Keycloak")
    rc, out, err = ctl("logout")
    check(rc == 0 and "not signed in" in out, f"logout again: {rc} {out} {err}")
    log("logout: session ended at Keycloak, token file removed")


if __name__ == "__main__":
    sys.exit(run(test_lmpctl_login))
