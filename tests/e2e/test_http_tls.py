"""
test_http_tls.py - calls out over HTTPS verify the peer (issue 19 item 1: "TLS
verification on"): against an upstream on loopback whose certificate this test
signs with a CA of its own,

- a destination that trusts the system's CAs refuses it: the reply is
  tls_failed and the upstream never sees a request;
- the same upstream behind a destination whose ca_file is the test's CA is
  called, and answers;
- a certificate for another name is refused even with the right CA.
"""
import datetime
import ipaddress
import json
import os
import shutil
import ssl
import sys
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import QuietHandler, serve_loopback, Host, tenant, run  # noqa: E402

DIR = tempfile.mkdtemp(prefix="tidepool-e2e-tls-")


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name("tidepool test CA")).issuer_name(name("tidepool test CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_leaf(ca_key, ca_cert, ip):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name("upstream")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def write_pem(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


CA_KEY, CA_CERT = make_ca()
CA_FILE = write_pem(os.path.join(DIR, "ca.pem"), CA_CERT.public_bytes(serialization.Encoding.PEM))


class TlsUpstream:
    """HTTPS on 127.0.0.1 with a certificate for san_ip, signed by the test's CA."""

    def __init__(self, san_ip):
        key, cert = make_leaf(CA_KEY, CA_CERT, san_ip)
        certfile = write_pem(os.path.join(DIR, "leaf-%s.pem" % san_ip),
                             cert.public_bytes(serialization.Encoding.PEM))
        keyfile = write_pem(os.path.join(DIR, "leaf-%s.key" % san_ip), key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.seen = []
        up = self

        class Handler(QuietHandler):

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                up.seen.append(self.path)
                out = b'{"tls":true}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile, keyfile)
        self.server, self.port = serve_loopback(Handler, ssl_context=ctx)


GOOD = TlsUpstream("127.0.0.1")
WRONG_NAME = TlsUpstream("127.0.0.2")   # listens on 127.0.0.1, certified for another address
T = tenant("tls", plugins={"caller": {}})
T["http"] = {
    "system": {"url": "https://127.0.0.1:%d" % GOOD.port, "plugins": ["caller"], "max_attempts": 1},
    "pinned": {"url": "https://127.0.0.1:%d" % GOOD.port, "plugins": ["caller"], "max_attempts": 1,
               "ca_file": CA_FILE},
    "misnamed": {"url": "https://127.0.0.1:%d" % WRONG_NAME.port, "plugins": ["caller"],
                 "max_attempts": 1, "ca_file": CA_FILE},
}
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="tls").start()
    return H


def reply_to(h, to, path):
    status, _, body = h.request("POST", "/v1/tls/caller/calls", body={"to": to, "path": path, "json": {}})
    assert status == 201, body
    cid = body["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, _, got = h.get("/v1/tls/caller/replies")
        mine = [r for r in got["items"] if r["call_id"] == cid]
        if mine:
            return mine[0]
        time.sleep(0.05)
    raise AssertionError("no reply from " + to)


def test_a_certificate_no_trusted_ca_signed_is_refused():
    r = reply_to(host(), "system", "/untrusted")
    assert r["ok"] is False and r["error"] == "tls_failed" and r["status"] == 0, r
    assert "/untrusted" not in GOOD.seen


def test_the_destinations_own_ca_is_trusted():
    r = reply_to(host(), "pinned", "/pinned")
    assert r["ok"] is True and r["status"] == 200 and json.loads(r["body"]) == {"tls": True}, r
    assert "/pinned" in GOOD.seen


def test_a_certificate_for_another_name_is_refused_even_with_the_right_ca():
    r = reply_to(host(), "misnamed", "/misnamed")
    assert r["ok"] is False and r["error"] == "tls_failed", r
    assert "/misnamed" not in WRONG_NAME.seen


def teardown():
    if H:
        H.stop()
    GOOD.server.shutdown()
    WRONG_NAME.server.shutdown()
    shutil.rmtree(DIR, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
