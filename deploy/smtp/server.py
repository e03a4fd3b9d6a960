#!/usr/bin/python3
"""The local stack's SMTP server: aiosmtpd (Debian's python3-aiosmtpd), keeping every
mail in a maildir (aiosmtpd's Mailbox handler, as `python3 -m aiosmtpd -c
aiosmtpd.handlers.Mailbox DIR` did). With a certificate it offers STARTTLS; with a
user as well it requires STARTTLS, then AUTH (PLAIN or LOGIN, refused before
STARTTLS), before it takes any mail (M5).
  server.py --listen HOST:PORT --maildir DIR [--cert FILE --key FILE
            [--user NAME --password-file FILE]]
The password is read from its file, never from the command line."""
import argparse
import asyncio
import hmac
import signal
import ssl
import sys

from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def options():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", required=True, help="HOST:PORT")
    p.add_argument("--maildir", required=True)
    p.add_argument("--cert", help="PEM certificate (chain) for STARTTLS")
    p.add_argument("--key", help="its PEM private key")
    p.add_argument("--user", help="the one user that may send; STARTTLS and AUTH become required")
    p.add_argument("--password-file", help="that user's password")
    o = p.parse_args()
    if bool(o.cert) != bool(o.key):
        p.error("--cert and --key go together")
    if bool(o.user) != bool(o.password_file):
        p.error("--user and --password-file go together")
    if o.user and not o.cert:
        p.error("--user needs --cert: AUTH is taken only over TLS")
    return o


def tls_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def authenticator(user, password):
    """AUTH PLAIN or LOGIN of that user with that password, compared in constant time."""
    want_user, want_password = user.encode(), password.encode()

    def check(server, session, envelope, mechanism, data):
        ok = (isinstance(data, LoginPassword) and hmac.compare_digest(data.login, want_user) and
              hmac.compare_digest(data.password, want_password))
        return AuthResult(success=ok, handled=False)
    return check


def main():
    o = options()
    host, _, port = o.listen.rpartition(":")
    kw = {"hostname": "smtp"}
    if o.cert:
        kw["tls_context"] = tls_context(o.cert, o.key)
    if o.user:
        with open(o.password_file) as fh:
            password = fh.read().strip()
        # auth_require_tls (aiosmtpd's default) refuses AUTH before STARTTLS.
        kw.update(require_starttls=True, auth_required=True, auth_require_tls=True,
                  authenticator=authenticator(o.user, password))
    handler = Mailbox(o.maildir)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(lambda: SMTP(handler, **kw), host, int(port)))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    print(f"smtp: listening on {o.listen}, mail into {o.maildir}"
          f"{', STARTTLS and AUTH required' if o.user else ', STARTTLS offered' if o.cert else ''}", flush=True)
    loop.run_forever()
    server.close()
    loop.run_until_complete(server.wait_closed())
    return 0


if __name__ == "__main__":
    sys.exit(main())
