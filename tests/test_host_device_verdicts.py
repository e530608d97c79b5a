"""The host tool never says "ok" before a device fails (issue 18): its verdicts held against the device
library's own on BOTH runtimes (CPython and the MicroPython unix port, tests/device/ scripts).

- verify: live TLS servers on 127.0.0.1, the issue's cases; a real device client (tests/device/client.py)
  holding the same pinset, configured as the flags say (--cadata FILE = the device's cadata). Wherever the
  host says ok, the device connects and the pinset is in force (no pinset_expired report). Where they
  differ, the host is the stricter one, for a reason named in the case.
- the pin check behind verify, over the corpora (every certificate shape of tests/support/certshapes.py,
  a certificate of every key type, the certifi CA bundle) as leaves: the host's verdict and the device's
  are equal.
- lint against the device loader: a pinset lint passes, a device loads; one a device refuses, lint refuses.
- check-update and flash (a bundle, or a pinset over a board's pinset) against certpin.update() on files:
  the same verdict and reason; a pinset flash refused exactly where the device's rollback rule refuses.
"""
import base64
import json
import types

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")

import certpin
from support import corpus
from support.cli import run
from support.signing import Key, bundle, fake_pin, pinset_doc, today

SPARE = "sha256/" + base64.b64encode(b"\x07" * 32).decode()


def device_verdicts(runtime, tasks, tmp_path):
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    board = tmp_path / ("board-%s" % runtime.name)
    board.mkdir(exist_ok=True)
    p = runtime.run("verdicts.py", tmp_path / "tasks.jsonl", board, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:] + p.stdout[-3000:]
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(out) == len(tasks)
    assert not [o for o in out if o[0] == "crash"], [o for o in out if o[0] == "crash"][:5]
    return out


# ---------------------------------------------------------------- verify, live


def _pinset_text(hosts, days):
    return json.dumps({"format": 1, "serial": 1, "issued": today(min(days, 0) - 30), "expires": today(days),
                       "hosts": hosts})


# name: (server, pinset hosts, pinset expires (days), device has cadata (root | rogue | both | None),
#        host expected ok, device expected ok, why they may differ)
LIVE = {
    "leaf pin and a spare": ("genuine", {"localhost": ["genuine", SPARE]}, 120, None, True, True, None),
    "CA pins only, no cadata": ("genuine", {"localhost": ["intermediate", "root"]}, 120, None, False, False, None),
    "CA pins only, cadata": ("genuine", {"localhost": ["intermediate", "root"]}, 120, "root", True, True, None),
    "rotated to the spare": ("rotated", {"localhost": ["genuine", "rotated"]}, 120, None, True, True, None),
    "rogue CA, no cadata": ("rogue_leaf", {"localhost": ["genuine", SPARE]}, 120, None, False, False, None),
    "rogue CA trusted as cadata": ("rogue_leaf", {"localhost": ["genuine", SPARE]}, 120, "both", False, False, None),
    "attacker + genuine intermediate": ("attacker_with_genuine_intermediate", {"localhost": ["intermediate", SPARE]},
                                        120, "root", False, False, None),
    "attacker + genuine intermediate, no cadata": ("attacker_with_genuine_intermediate",
                                                   {"localhost": ["intermediate", SPARE]}, 120, None, False, False,
                                                   None),
    "IP literal host": ("genuine", {"127.0.0.1": ["genuine", SPARE]}, 120, None, True, True, None),
    "typo in the pinned name, cadata": ("genuine", {"locahlost": ["genuine", SPARE]}, 120, "root", False, False,
                                        None),
    "typo in the pinned name, no cadata": ("genuine", {"locahlost": ["genuine", SPARE]}, 120, None, False, True,
                                           "a device without cadata checks no name, but none reaches a "
                                           "misspelt host in real DNS"),
    "expired pinset, no cadata": ("genuine", {"localhost": ["genuine", SPARE]}, -10, None, False, True,
                                  "the device connects on pins nobody maintains and reports pinset_expired"),
    "expired pinset, cadata": ("genuine", {"localhost": ["genuine", SPARE]}, -10, "root", False, True,
                               "the device dropped the pins: CA validation only, reports pinset_expired"),
    "report_only mismatch": ("rogue_leaf", {"localhost": {"pins": ["genuine", SPARE], "report_only": True}}, 120,
                             None, True, True, None),
}


def _pin(pki, name):
    return {"genuine": pki.genuine.pin, "rotated": pki.rotated.pin, "intermediate": pki.intermediate_pin,
            "root": pki.root_pin}.get(name, name)


@pytest.mark.parametrize("case", sorted(LIVE))
def test_verify_ok_means_the_device_connects_with_the_pinset_in_force(case, runtime, pki, serve, tmp_path, capsys):
    server, hosts, days, cadata, host_ok, device_ok, why = LIVE[case]
    s = serve(getattr(pki, server))
    doc_hosts = {}
    for h, v in hosts.items():
        e = dict(v) if isinstance(v, dict) else {"pins": v}
        e["pins"] = [_pin(pki, p) for p in e["pins"]]
        doc_hosts[h] = e
    text = _pinset_text(doc_hosts, days)
    path = tmp_path / "pins.json"
    path.write_text(text)
    flags = []
    ca_ders = []
    if cadata:
        pem = tmp_path / "cadata.pem"
        pem.write_bytes(pki.root_pem if cadata == "root" else
                        pki.root_pem + open(pki.path("rogue-root.pem"), "rb").read())
        flags = ["--cadata", pem]
        ca_ders = [pki.path("root.der")] + ([pki.path("rogue-root.der")] if cadata == "both" else [])
    r = run(capsys, "verify", path, "--connect-to", "::127.0.0.1:%d" % s.port, "--json", *flags)
    assert r.status in (0, 1), r
    got_host = r.json()["ok"]
    (host,) = doc_hosts
    cfg = tmp_path / "client.json"
    cfg.write_text(json.dumps({"pinset_text": text, "host": host, "addr": "127.0.0.1", "port": s.port,
                               "cadata": ca_ders or None, "mode": "blocking", "floor": today()}))
    p = runtime.run("client.py", cfg)
    dev = json.loads(p.stdout.strip().splitlines()[-1])
    in_force = not any(f["reason"] == "pinset_expired" for f in dev["failures"])
    print("%s [%s]: host %s, device %s%s" % (case, runtime, got_host, dev["ok"], "" if in_force else " (expired)"))
    assert (got_host, dev["ok"]) == (host_ok, device_ok), (case, r.out[-1500:], dev)
    if got_host:  # the guarantee: when the host says ok, the device accepts and the pinset is in force
        assert dev["ok"] and in_force, (case, dev)
    if host_ok != device_ok:
        assert why and not host_ok, case  # only ever the host being stricter, for a stated reason
    if days < 0:
        assert not in_force  # the device itself says the pinset is no longer in force


# ---------------------------------------------------------------- the pin check over the corpora


@pytest.fixture(scope="module")
def leaf_corpus():
    from support import certshapes

    items = [("shape " + n, s.der) for n, s in sorted(certshapes.build().items())]
    items += [("keytype " + k, d) for k, d in sorted(corpus.keytype_certs().items())]
    items += [("certifi[%d]" % i, d) for i, d in enumerate(corpus.certifi_ders())]
    return items


def test_the_pin_check_behind_verify_equals_the_devices_over_the_corpora(runtime, leaf_corpus, tmp_path):
    from certpin_host import device
    from certpin_host.pins import UnreadableCertificate, Item

    tasks, host = [], []
    for label, der in leaf_corpus:
        try:
            pin = Item.certificate(der).spki_sha256  # what `certpin pin` prints for it
        except UnreadableCertificate:
            pin = fake_pin(label)
        text = json.dumps({"format": 1, "hosts": {"localhost": {"pins": [pin, SPARE]},
                                                  "other.example": {"pins": [SPARE, fake_pin("x")]}}})
        obj, data = device.load(text)
        for name in ("localhost", "other.example"):  # its pin, and a host it does not match
            try:
                host.append(("ok", device.check(obj, data, name, [der], False)))
            except device.Refused:
                host.append(("refused", None))
            tasks.append({"op": "check", "pinset": text, "host": name, "chain": [der.hex()], "verified": False})
    dev = device_verdicts(runtime, tasks, tmp_path)
    bad = [(leaf_corpus[i // 2][0], h, d) for i, (h, d) in enumerate(zip(host, dev))
           if (h[0] == "ok") != (d[0] == "ok") or (h[0] == "ok" and h[1] != d[1])]
    print("\n%s: %d checks, %d accepted by both" % (runtime, len(tasks), sum(1 for h in host if h[0] == "ok")))
    assert bad == []
    assert sum(1 for h in host if h[0] == "ok") > len(leaf_corpus) * 0.8  # the corpus is mostly checkable


# ---------------------------------------------------------------- lint against the loader


def _lint_cases():
    from test_pinset import P1, P2, doc, test_malformed_pinset

    texts = [p[0] if isinstance(p[0], str) else None for p in test_malformed_pinset.pytestmark[0].args[1]]
    texts = [t for t in texts if t is not None]
    good = {"format": 1, "serial": 3, "issued": today(), "expires": today(200),
            "update": {"keys": [], "threshold": 1}, "hosts": {"api.example.com": {"pins": [P1, P2]}}}
    texts += [doc(), doc(hosts={"a.example.com": {"pins": [P1, P2], "ports": [8883, 443]}}),
              doc(hosts={"a.example.com": {"pins": [P1]}}),  # lint error only (no backup), a device loads it
              doc(hosts={"ddns.net": {"pins": [P1, P2], "subdomains": True}}),  # lint error only
              doc(expires="2020-01-01"), doc(hosts={"a.example.com": {"pins": [P1, P2], "ports": [0]}}),
              json.dumps(dict(good, hosts={"a.example.com": {"pins": [P1, P2], "port": 443}}))]
    return texts


def test_lint_passes_only_what_a_device_loads(runtime, tmp_path):
    from certpin_host import lint

    texts = _lint_cases()
    dev = device_verdicts(runtime, [{"op": "loads", "text": t} for t in texts], tmp_path)
    for t, d in zip(texts, dev):
        errors = [f for f in lint.lint_pinset_text(t) if f.level == "error"]
        if not errors:
            assert d[0] == "ok", (t, d)  # lint ok => the device loads it
        if d[0] != "ok":
            assert errors, (t, d)  # the device refuses => lint refuses
    assert sum(1 for d in dev if d[0] == "ok") >= 4 and sum(1 for d in dev if d[0] != "ok") >= 20


# ---------------------------------------------------------------- check-update and flash against update()


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    return [Key(d, name) for name in ("a", "b", "c")]


def _b(serial, keys, **kw):
    return (json.dumps(pinset_doc(serial, keys=keys, **kw), indent=2) + "\n").encode()


def _update_cases(keys):
    a, b, c = keys
    cur = _b(5, [a, b])
    return [
        ("accepted", cur, bundle(_b(6, [a, b]), [a]), None),
        ("the same bytes", cur, bundle(cur, [c]), None),
        ("rollback", cur, bundle(_b(4, [a, b]), [a]), None),
        ("same serial", cur, bundle(_b(5, [a, b], hosts={"x.example.com": {"pins": [fake_pin(1), fake_pin(2)]}}),
                                    [a]), None),
        ("unknown key", cur, bundle(_b(6, [a, b]), [c]), None),
        ("threshold", _b(5, [a, b], threshold=2), bundle(_b(6, [a, b]), [a, a]), None),
        ("bad signature", cur, bundle(_b(6, [a, b]), [a], sig=b"\x01" * 64), None),
        ("expired by the clock", cur, bundle(_b(6, [a, b], issued=today(-30), expires=today(-1)), [a]), None),
        ("expired by the board's floor", cur, bundle(_b(6, [a, b], expires=today(20)), [a]), today(30)),
        ("in force by the floor", cur, bundle(_b(6, [a, b], expires=today(40)), [a]), today(30)),
        ("not a bundle", cur, b"not json", None),
        ("no update keys", _b(5, []), bundle(_b(6, [a, b]), [a]), None),
        ("no serial in the payload", cur, bundle(json.dumps({k: v for k, v in pinset_doc(6, keys=[a, b]).items()
                                                             if k != "serial"}).encode(), [a]), None),
    ]


def test_check_update_and_flash_decide_as_update_does(runtime, keys, tmp_path):
    from certpin._load import date

    from certpin_host import cmd_flash, pinset_check

    cases = _update_cases(keys)
    tasks = [{"op": "update", "installed": cur.hex(), "bundle": bnd.hex(), "floor": floor}
             for _, cur, bnd, floor in cases]
    dev = device_verdicts(runtime, tasks, tmp_path)
    for (name, cur, bnd, floor), d in zip(cases, dev):
        fl = date(floor) if floor else None
        v, _ = pinset_check.decide(cur, bnd, None, fl)
        assert v["ok"] == (d[0] == "ok"), (name, v, d)
        if not v["ok"]:
            assert v["reason"] == d[1], (name, v, d)
        else:
            assert d[1] == [v["serial_to"], v["same"]], (name, v, d)
        # `certpin flash BUNDLE` on a board holding cur (and that floor): the same verdict
        plan = types.SimpleNamespace(kind="bundle", raw=bnd, payload=None, new=None, name="b.jws")
        try:
            plan.payload = cmd_flash._bundle_payload(bnd)
        except Exception:
            assert d[0] != "ok", (name, d)  # refused before any board is read
            continue
        state = {"installed": cur, "from_bak": False, "floor": fl}
        args = types.SimpleNamespace(force=False, dest="/certpin.json")
        try:
            action = cmd_flash.decide(plan, state, args, lambda m: None)
        except cmd_flash.Refused as e:
            assert d[0] != "ok" and d[1] in str(e), (name, str(e), d)
        else:
            assert d[0] == "ok" and (action == "same") == d[1][1], (name, action, d)


def test_a_pinset_flash_is_refused_where_the_devices_rollback_rule_refuses(runtime, keys, tmp_path):
    """`certpin flash PINSET` over a board's pinset: refused exactly where the device, offered the same pinset
    signed by its own update key, refuses it (rollback, or no serial); the same bytes are a no-op on both."""
    from certpin_host import cmd_flash

    a, b, _ = keys
    board = _b(5, [a, b])
    other5 = _b(5, [a, b], hosts={"x.example.com": {"pins": [fake_pin(1), fake_pin(2)]}})
    noserial = json.dumps({k: v for k, v in pinset_doc(6, keys=[a, b]).items() if k != "serial"}).encode()
    offered = [("lower", _b(4, [a, b])), ("same serial, other bytes", other5), ("same bytes", board),
               ("higher", _b(6, [a, b])), ("no serial", noserial)]
    tasks = [{"op": "update", "installed": board.hex(), "bundle": bundle(new, [a]).hex(), "floor": None}
             for _, new in offered]
    dev = device_verdicts(runtime, tasks, tmp_path)
    for (name, new), d in zip(offered, dev):
        plan = types.SimpleNamespace(kind="pinset", raw=new, payload=new, new=certpin.loads(new), name="p.json")
        state = {"installed": board, "from_bak": False, "floor": None}
        try:
            action = cmd_flash.decide(plan, state, types.SimpleNamespace(force=False, dest="/certpin.json"),
                                      lambda m: None)
        except cmd_flash.Refused:
            assert d[0] == "UpdateError" and d[1] in ("rollback", "bad_pinset"), (name, d)
        else:
            assert d[0] == "ok" and (action == "same") == d[1][1], (name, action, d)
