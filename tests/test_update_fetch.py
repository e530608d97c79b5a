"""certpin.fetch_update() against local HTTP(S) servers, on CPython and the unix port.

Servers that stall, trickle, send 1 MiB, announce 1 MiB, close early, redirect,
answer 404, send garbage or 64 KiB of headers: each is an UpdateError with
reason "fetch" within the timeout (never a hang, never another exception
type), and the installed pinset is untouched. A genuine server installs the
bundle over http, over https without pins (with and without cadata), and over
https to an update host that is itself in the pinset (its pins apply).
"""

import pytest

from support import jws
from support.update_servers import UpdateServer
from test_update import run_steps, write

KEY = jws.new_key()
TIMEOUT = 2


def installed(pki=None, url=None):
    hosts = None
    if pki is not None:  # the update host 127.0.0.1 is pinned
        hosts = {"127.0.0.1": {"pins": [pki.genuine.pin, "sha256/" + "A" * 43 + "="]}}
    return jws.pinset(1, [KEY], hosts=hosts, url=url)


NEW = jws.pinset(2, [KEY])
BUNDLE = jws.bundle(NEW, [KEY])


def fetch(url, **kw):
    d = {"op": "fetch", "url": url, "timeout": TIMEOUT}
    d.update(kw)
    return d


BAD = [
    ("stall", "no complete answer within"),
    ("trickle", "no complete answer within"),
    ("huge", "larger than 16384"),
    ("biglength", "Content-Length 1048576"),
    ("short", "truncated"),
    ("redirect", "redirect to 'http://127.0.0.1:1/elsewhere.jws': not followed"),
    ("notfound", "HTTP 404"),
    ("garbage", "pinset update not fetched"),
    ("longhead", "headers are longer than 4096"),
    # issue 15.6: what docs/updates.md says, exactly
    ("longbody", "more bytes than its Content-Length of 10"),
    ("chunked", "Transfer-Encoding"),
    ("head:4097", "headers are longer than 4096"),
    ("head:6000", "headers are longer than 4096"),
    ("head:8000", "headers are longer than 4096"),
]


@pytest.fixture(scope="module")
def tls_files(pki):
    return pki.genuine.write(pki.dir)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_bad_servers_are_fetch_errors_within_the_timeout(runtime, tmp_path, tls_files, scheme):
    servers = [UpdateServer(mode, BUNDLE, tls=tls_files if scheme == "https" else None, delay=0.4).start()
               for mode, _ in BAD]
    try:
        steps = []
        for s in servers:
            steps += [write(installed()), fetch(s.url()), {"op": "read", "name": "certpin.json"}]
        out, _ = run_steps(runtime, tmp_path, steps)
    finally:
        for s in servers:
            s.stop()
    wrong = []
    for i, (mode, fragment) in enumerate(BAD):
        r = out[3 * i + 1]
        if not (r["ok"] is False and r["type"] == "UpdateError" and r["reason"] == "fetch" and fragment in r["message"]
                and r["seconds"] < TIMEOUT + 5  # bounded by the deadline, with slack for load
                and out[3 * i + 2] == installed().decode()):
            wrong.append((mode, r))
    assert wrong == [], wrong
    assert all(len(s.requests) == 1 for s in servers), [len(s.requests) for s in servers]


def test_genuine_servers_install_over_http_and_https(runtime, tmp_path, pki, tls_files):
    plain = UpdateServer("ok", BUNDLE).start()
    nolen = UpdateServer("nolength", BUNDLE).start()
    tls = UpdateServer("ok", BUNDLE, tls=tls_files).start()
    rogue = UpdateServer("ok", BUNDLE, tls=pki.rogue_leaf.write(pki.dir)).start()
    root = [pki.path("root.der")]
    try:
        out, _ = run_steps(runtime, tmp_path, [
            write(installed(url=plain.url())), fetch(None), fetch(plain.url()),  # update.url; then a no-op
            write(installed()), fetch(nolen.url()),
            write(installed()), fetch(tls.url()),  # https, no pins, no cadata: the signature protects
            write(installed()), fetch(tls.url(), cadata=root),  # https validated against cadata
            write(installed()), fetch(rogue.url(), cadata=root),  # ... which refuses another CA's server
            write(installed(pki)), fetch(tls.url()),  # the update host is pinned: pins apply, genuine passes
            write(installed(pki)), fetch(rogue.url()),  # ... and a server with another key is refused
            write(installed()), fetch("ftp://127.0.0.1/x"), fetch(None),
        ])
    finally:
        for s in (plain, nolen, tls, rogue):
            s.stop()
    assert out[1]["ok"] and out[1]["serial"] == 2 and out[1]["changed"] is True, out[1]
    assert out[2]["ok"] and out[2]["serial"] == 2 and out[2]["changed"] is False, out[2]
    assert b"GET /fleet/certpin.jws HTTP/1.0\r\nHost: 127.0.0.1\r\n" in plain.requests[0]
    for i in (4, 6, 8, 12):
        assert out[i]["ok"] and out[i]["serial"] == 2 and out[i]["changed"], (i, out[i])
    assert out[10]["reason"] == "fetch", out[10]
    assert out[14]["reason"] == "fetch" and "no configured pin matched" in out[14]["message"], out[14]
    assert rogue.requests == [] or all(r == b"" for r in rogue.requests)  # nothing sent to the unpinned key
    assert out[16]["reason"] == "fetch" and "http://" in out[16]["message"], out[16]
    assert out[17]["reason"] == "fetch" and "no update.url" in out[17]["message"], out[17]


def test_a_refused_bundle_from_the_server_keeps_its_reason(runtime, tmp_path):
    # The transport worked; the signature rules decide (and say so).
    stranger = jws.bundle(NEW, [jws.new_key()])
    s = UpdateServer("ok", stranger).start()
    try:
        out, _ = run_steps(runtime, tmp_path, [write(installed()), fetch(s.url())])
    finally:
        s.stop()
    assert out[1]["ok"] is False and out[1]["reason"] == "unknown_key", out[1]


def test_content_length_and_the_header_limit_exactly(runtime, tmp_path):
    # issue 15.6: a header block of exactly 4096 bytes is read; the body is
    # held to Content-Length (bytes that arrive after it are never used: a
    # late rest of the bundle leaves 10 bytes, refused as not_jws); the
    # request carries the check-in User-Agent with the installed serial.
    exact = UpdateServer("head:4096", BUNDLE).start()
    late = UpdateServer("latebody", BUNDLE, delay=0.3).start()
    try:
        out, _ = run_steps(runtime, tmp_path, [
            write(installed()), fetch(late.url()), {"op": "read", "name": "certpin.json"},
            fetch(exact.url()), {"op": "read", "name": "certpin.json"},
        ])
    finally:
        for s in (exact, late):
            s.stop()
    assert out[1]["ok"] is False and out[1]["reason"] == "not_jws", out[1]
    assert out[2] == installed().decode()
    assert out[3]["ok"] and out[3]["serial"] == 2 and out[3]["changed"], out[3]
    assert out[4] == NEW.decode()
    assert b"\r\nUser-Agent: certpin/0.1.0 serial/1\r\n" in exact.requests[0], exact.requests[0]


@pytest.mark.parametrize("fw", ["mp1.20", "mp1.22", "mp1.22-peercert", "mp1.23"])
def test_fetch_over_https_on_older_firmware(fw, tmp_path, pki, tls_files):
    # Real builds (../shared/runtimes): https to an update host outside the pinset, with and without
    # cadata, and to one in the pinset. Firmware without verify_callback (< 1.23) does its TLS through
    # certpin/_old.py; it raised a bare AttributeError (1.20) or OSError(2) (1.22 with cadata) before.
    from conftest import firmware

    rt = firmware(fw)
    tls = UpdateServer("ok", BUNDLE, tls=tls_files).start()
    rogue = UpdateServer("ok", BUNDLE, tls=pki.rogue_leaf.write(pki.dir)).start()
    root = [pki.path("root.der")]
    try:
        out, _ = run_steps(rt, tmp_path, [
            write(installed()), fetch(tls.url()),  # no pins, no cadata: the signature protects
            # validated against cadata, by name (mbedTLS 2.x, v1.20-v1.22, matches no IP address)
            write(installed()), fetch(tls.url().replace("127.0.0.1", "localhost"), cadata=root),
            write(installed()), fetch(rogue.url().replace("127.0.0.1", "localhost"), cadata=root),  # another CA's
            write(installed(pki)), fetch(tls.url()),  # the update host is pinned
            write(installed(pki)), fetch(rogue.url()),  # ... and another key is refused
        ])
    finally:
        for s in (tls, rogue):
            s.stop()
    for i in (1, 3):
        assert out[i]["ok"] and out[i]["serial"] == 2, (fw, i, out[i].get("message"))
    assert out[5]["ok"] is False and out[5]["reason"] == "fetch", out[5]
    if fw == "mp1.22":  # no getpeercert: a pinned update host cannot be checked here, and is refused
        assert out[7]["ok"] is False and out[7]["reason"] == "fetch" and "pins cannot be checked" in out[7]["message"], out[7]
    else:
        assert out[7]["ok"] and out[7]["serial"] == 2, (fw, out[7])
    assert out[9]["ok"] is False and out[9]["reason"] == "fetch", out[9]


def test_a_closed_port_says_connection_refused(runtime, tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    out, _ = run_steps(runtime, tmp_path, [write(installed()), fetch("http://127.0.0.1:%d/fleet.jws" % port)])
    r = out[1]
    assert r["ok"] is False and r["reason"] == "fetch", r
    assert "connection refused by 127.0.0.1:%d (nothing listening there?)" % port in r["message"], r["message"]
