"""lmpctl's human output shows what daemons and events supplied with its control
characters escaped: a status answer whose partner id, account name, carrier, tracking
number, reasons and stages hold terminal escape sequences (CSI, OSC, the one-byte C1
CSI, NEL), line breaks, a bell and DEL is printed with each byte of them as '?', so none
reaches the operator's terminal. The answer comes from a small HTTP server of the
test's own, standing in for intake's admin listener; no stack is needed."""
import http.server
import json
import os
import subprocess
import sys
import threading

BUILD = os.environ.get("LMP_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
LMPCTL = os.path.join(BUILD, "tools", "lmpctl")
ID = "0b7f6c1e-4a57-4c2e-9a54-6f1d7a0c0002"

# Each hostile text, and what the operator must see instead.
HOSTILE = {
    "partner_id": ("p\x1b[2J\x1b[H", "p?[2J?[H"),
    "account_name": ("Acme\r\nCONFIRMED all good\x07", "Acme??CONFIRMED all good?"),
    "license": ("MDR\x9b31m", "MDR??31m"),
    "customer_id": ("c\x7fd\x85", "c?d??"),
    "carrier": ("UPS\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\", "UPS?]8;;http://evil.example/?\\click?]8;;?\\"),
    "tracking_number": ("1Z\r\x1b[Kforged", "1Z??[Kforged"),
    "message": ("Out of stock\n\x1b[32mfixed", "Out of stock??[32mfixed"),
    "stage": ("shipping\x1b[1A", "shipping?[1A"),
    "recipient": ("ops\x1b[8m@example.com", "ops?[8m@example.com"),
    "reason": ("550 no\r\n\x1b[2Ksuch user", "550 no???[2Ksuch user"),
}


def answer():
    h = {k: v[0] for k, v in HOSTILE.items()}
    return {"onboarding_id": ID, "status": "failed", "partner_id": h["partner_id"], "license": h["license"],
            "account_name": h["account_name"], "customer_id": h["customer_id"],
            "reasons": [{"code": "OUT\x1b[0m", "field": "deployment\r", "message": h["message"]}],
            "warnings": [], "duplicates": 0, "conflicts": 0,
            "stages": [{"at": "2026-12-04T10:00:00Z", "stage": "shipment-dispatched",
                        "detail": {"carrier": h["carrier"], "tracking_number": h["tracking_number"]}},
                       {"at": "2026-12-04T10:01:00Z", "stage": "failed\x1b[5m", "detail": {"stage": h["stage"]}}],
            "mails": [{"kind": "invitation", "recipient": h["recipient"], "status": "failed", "reason": h["reason"]}]}


class Intake(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(answer()).encode()
        self.send_response(200 if self.path == f"/v1/onboardings/{ID}" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Intake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"PATH": os.environ.get("PATH", ""),
           "LMP_INTAKE_ADMIN_URL": f"http://127.0.0.1:{server.server_address[1]}"}
    try:
        out = subprocess.run([LMPCTL, "status", ID], env=env, capture_output=True, timeout=30)
    finally:
        server.shutdown()
    text = out.stdout.decode("utf-8")
    problems = []
    if out.returncode != 4:
        problems.append(f"exit status {out.returncode}, want 4 (failed): {out.stderr!r}")
    lines = text.split("\n")
    if not lines[-1] == "" or any(c in text for c in "\r\x1b\x07\x7f\x85\x9b"):
        problems.append("a control character reached the output")
    for name, (_, shown) in HOSTILE.items():
        if shown not in text:
            problems.append(f"{name}: {shown!r} not shown")
    for expected in ("onboarding " + ID + "  FAILED", "OUT?[0m", "deployment?", "failed?[5m"):
        if expected not in text:
            problems.append(f"{expected!r} not shown")
    if len(lines) != 11:
        problems.append(f"{len(lines) - 1} lines, want 10: a line break of the answer's own")
    if problems:
        print("FAIL lmpctl status output:\n" + text.encode("unicode_escape").decode() + "\n" + "\n".join(problems))
        return 1
    print("PASS lmpctl status shows every control character of the answer escaped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
