"""Pinset loading and validation, host matching, check()."""
import json

import pytest

import certpin

import base64

P1 = "sha256/" + base64.b64encode(bytes([1]) * 32).decode()
P2 = "sha256/" + base64.b64encode(bytes([2]) * 32).decode()
C1 = "cert-sha256/" + base64.b64encode(bytes([3]) * 32).decode()


def doc(**over):
    d = {"format": 1, "serial": 3, "expires": "2027-06-30", "hosts": {"api.example.com": {"pins": [P1, P2]}}}
    d.update(over)
    return json.dumps(d)


def test_loads_valid():
    ps = certpin.loads(doc())
    assert ps.serial == 3 and ps.expires == (2027, 6, 30)
    assert ps.hosts() == ["api.example.com"]
    assert ps.pins("api.example.com") == [P1, P2]
    assert ps.pins("API.Example.com.") == [P1, P2]


@pytest.mark.parametrize(
    "text, field",
    [
        (doc(format=2), "format"),
        (doc(format=True), "format"),
        (doc(serial=-1), "serial"),
        (doc(serial="7"), "serial"),
        (doc(expires="2027-02-30"), "expires"),
        (doc(expires="27-06-30"), "expires"),
        (doc(expires="2027-+6-30"), "expires"),
        (doc(hosts={}), "hosts"),
        (doc(hosts=[]), "hosts"),
        (doc(extra=1), "unknown key 'extra'"),
        (doc(hosts={"api.example.com": {"pins": []}}), "pins"),
        (doc(hosts={"api.example.com": {"pins": P1}}), "pins"),
        (doc(hosts={"api.example.com": {"pins": [P1], "subdomain": True}}), "unknown key 'subdomain'"),
        (doc(hosts={"api.example.com": {"pins": [P1], "subdomains": 1}}), "subdomains"),
        (doc(hosts={"api.example.com": {"pins": [P1], "report_only": "no"}}), "report_only"),
        (doc(hosts={"api.example.com": {"pins": ["sha256/AAAA"]}}), "pins[0]"),
        (doc(hosts={"api.example.com": {"pins": [P1, "sha256/" + "A" * 42 + "=="]}}), "pins[1]"),
        (doc(hosts={"api.example.com": {"pins": ["sha256/" + "A" * 43 + "B"]}}), "pins[0]"),
        (doc(hosts={"api.example.com": {"pins": ["sha256/" + "!" * 43 + "="]}}), "pins[0]"),
        (doc(hosts={"api.example.com": {"pins": ["sha256//" + "A" * 43 + "="]}}), "pins[0]"),
        (doc(hosts={"api.example.com": {"pins": ["sha1/" + "A" * 27 + "="]}}), "pins[0]"),
        (doc(hosts={"api.example.com": {"pins": ["ab" * 32]}}), "pins[0]"),
        (doc(hosts={"API.example.com": {"pins": [P1]}}), "lowercase"),
        (doc(hosts={"api.example.com.": {"pins": [P1]}}), "trailing dot"),
        (doc(hosts={"bad host": {"pins": [P1]}}), "host name"),
        (doc(hosts={"10.0.0.1": {"pins": [P1], "subdomains": True}}), "IP literal"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": []}}), "ports"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": [0]}}), "ports"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": [65536]}}), "ports"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": [-443]}}), "ports"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": [True]}}), "ports"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": ["443"]}}), "ports"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": 443}}), "ports"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": None}}), "ports"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": [443, 443]}}), "ports"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": list(range(1, 18))}}), "ports"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": [10 ** 20]}}), "ports"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": [1]}}).replace("[1]", "[1.0]"), "not valid UTF-8 JSON"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": [1]}}).replace("[1]", "[1e3]"), "not valid UTF-8 JSON"),
        (doc(hosts={"api.example.com": {"pins": [P1], "ports": [1]}}).replace("[1]", "[0443]"), "not valid UTF-8 JSON"),
        (doc(hosts={"api.example.com": {"pins": [P1], "port": [443]}}), "unknown key 'port'"),
        ("[]", "JSON object"),
        ("{", "not valid UTF-8 JSON"),
        (b"\xff\xfe{", "not valid UTF-8 JSON"),
        ("x" * 70000, "larger than"),
    ],
)
def test_malformed_pinset(text, field):
    with pytest.raises(certpin.PinsetError) as e:
        certpin.loads(text)
    assert field in str(e.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(certpin.PinsetError, match="cannot read"):
        certpin.load(str(tmp_path / "nope.json"))


def test_load_names_the_file(tmp_path):
    p = tmp_path / "pins.json"
    p.write_text(doc(format=9))
    with pytest.raises(certpin.PinsetError, match="pins.json: format"):
        certpin.load(str(p))


def hosts_ps():
    return certpin.loads(json.dumps({"format": 1, "hosts": {
        "example.com": {"pins": [P1], "subdomains": True},
        "api.example.com": {"pins": [P2]},
        "10.0.0.1": {"pins": [C1]},
    }}))


@pytest.mark.parametrize(
    "host, pins",
    [
        ("example.com", [P1]),
        ("EXAMPLE.com.", [P1]),
        ("www.example.com", [P1]),
        ("a.b.c.example.com", [P1]),
        ("api.example.com", [P2]),  # most specific entry wins
        ("x.api.example.com", [P1]),  # api.example.com does not cover subdomains
        ("xexample.com", []),
        ("evilexample.com", []),
        ("example.com.evil.net", []),
        ("10.0.0.1", [C1]),
        ("1.10.0.0.1", []),
        ("", []),
        ("com", []),
    ],
)
def test_host_matching(host, pins):
    assert hosts_ps().pins(host) == pins


def test_check_leaf_only_and_verified():
    from test_der import KEYS, self_signed
    from support.pki import spki_pin

    leaf = self_signed(KEYS["p256"]())
    ca = self_signed(KEYS["p256"]())
    ps = certpin.loads(json.dumps({"format": 1, "hosts": {"h.test": {"pins": [spki_pin(ca), P1]}}}))
    with pytest.raises(certpin.PinError, match="only the leaf"):
        certpin.check(ps, "h.test", [leaf, ca])
    assert certpin.check(ps, "h.test", [leaf, ca], verified=True) == spki_pin(ca)
    with pytest.raises(certpin.PinError, match="not in the pinset"):
        certpin.check(ps, "other.test", [leaf])
    with pytest.raises(certpin.PinError):
        certpin.check(ps, "h.test", [])
    with pytest.raises(certpin.PinError, match="cannot be checked"):
        certpin.check(ps, "h.test", [b"\x30\x00"])
    with pytest.raises(certpin.PinsetError):
        certpin.check({"format": 1}, "h.test", [leaf])


def test_errors_hierarchy():
    assert issubclass(certpin.PinError, certpin.Error)
    assert issubclass(certpin.PinsetError, certpin.Error)


def test_both_runtimes_validate_alike(tmp_path):
    """Every malformed pinset above, plus the valid ones, gives the same verdict
    and the same field on CPython and on the MicroPython unix port."""

    from conftest import Runtime

    cases = []
    for param in test_malformed_pinset.pytestmark[0].args[1]:
        text = param[0]
        cases.append({"hex": text.hex()} if isinstance(text, bytes) else {"text": text})
    cases.append({"text": doc()})
    cases.append({"text": json.dumps({"format": 1, "hosts": {
        "example.com": {"pins": [P1], "subdomains": True}, "10.0.0.1": {"pins": [C1]}}})})
    cases.append({"text": json.dumps({"format": 1, "hosts": {
        "api.example.com": {"pins": [P1, P2], "ports": [443, 8883]}, "10.0.0.1": {"pins": [C1], "ports": [65535, 1]}}})})
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    results = {}
    for name in ("cpython", "micropython"):
        p = Runtime(name).run("loads_cases.py", str(path))
        assert p.returncode == 0, p.stderr + p.stdout
        results[name] = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(results["cpython"]) == len(cases)
    for i, (c, m) in enumerate(zip(results["cpython"], results["micropython"])):
        assert c[0] == m[0], (cases[i], c, m)
        if c[0] == "ok":
            assert c == m
        else:
            assert c[0] == "PinsetError"
            # Same field and the same sentence, up to the parser's own detail in parentheses.
            assert c[1].split("(")[0] == m[1].split("(")[0], (cases[i], c, m)
