"""certpin flash BUNDLE.jws: onto virtual boards through the real tools, decided by the device's update rules."""
import json
import os

import pytest

from support.signing import Key, bundle, fake_pin, pinset_doc, today
from support.vboard_fixtures import sha256_hex, vboard  # noqa: F401


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    return [Key(d, name) for name in ("a", "b", "c")]


def pinset_bytes(serial, keys, **kw):
    return (json.dumps(pinset_doc(serial, keys=keys, **kw), indent=2) + "\n").encode()


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


LOAD = "import certpin\nps = certpin.load()\nprint('SERIAL', ps.serial, 'ISSUED', ps.issued)\n"


@pytest.mark.parametrize("fs, tool", [("lfs2", "mpremote"), ("fat", "ampy")])
def test_provision_then_update_then_refuse_like_the_board(vboard, tmp_path, keys, fs, tool):
    b = vboard(fs=fs, size=256 * 1024)
    a, k_b, c = keys
    v1 = pinset_bytes(1, [a, k_b])
    v2 = pinset_bytes(2, [a, k_b], hosts={"api.example.com": {"pins": [fake_pin(7), fake_pin(8)]}})
    v1_jws = write(tmp_path, "v1.jws", bundle(v1, [a]))
    v2_jws = write(tmp_path, "v2.jws", bundle(v2, [a]))

    def back():
        p = b.mpremote("resume", "fs", "cp", ":/certpin.json", str(tmp_path / "back.json"), check=False)
        return (tmp_path / "back.json").read_bytes() if p.returncode == 0 else None

    # a board without a pinset cannot check an update: only --force provisions it
    p = b.flash(v1_jws, "--tool", tool)
    assert p.returncode == 1 and "no pinset" in p.stderr and "--force" in p.stderr, p.stdout + p.stderr
    lib = ["--lib"] if tool == "mpremote" else []  # (ampy copies the library file by file: slow, tested elsewhere)
    p = b.flash(v1_jws, "--tool", tool, "--force", *lib)
    assert p.returncode == 0, p.stdout + p.stderr
    assert back() == v1  # the exact signed bytes
    # a signed update by a key of the installed pinset
    p = b.flash(v2_jws, "--tool", tool)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "the board accepts it: serial 1 -> 2" in p.stdout and "api.example.com: +" in p.stdout
    assert back() == v2
    if lib:
        out = b.run(LOAD, tmp_path)
        assert "SERIAL 2 ISSUED (%s)" % today().replace("-0", "-").replace("-", ", ") in out, out
    # the same bundle again: nothing to do
    p = b.flash(v2_jws, "--tool", tool)
    assert p.returncode == 0 and "already holds exactly this pinset" in p.stdout, p.stdout + p.stderr
    # refused as the board refuses: rollback, an unknown signer, a tampered payload
    tampered = json.loads(bundle(v2, [a]))
    tampered["payload"] = json.loads(bundle(pinset_bytes(3, [a, k_b]), [a]))["payload"]
    for bad, reason in ((v1_jws, "rollback"), (write(tmp_path, "c.jws", bundle(pinset_bytes(3, [a, k_b]), [c])),
                                               "unknown_key"),
                        (write(tmp_path, "t.jws", json.dumps(tampered).encode()), "bad_signature")):
        p = b.flash(bad, "--tool", tool)
        assert p.returncode == 1, p.stdout + p.stderr
        assert p.stderr.startswith("certpin: flash: the board would refuse this update") and reason in p.stderr, p.stderr
        assert back() == v2
    # --force: recovery over USB installs it anyway (what a device would load, still)
    p = b.flash(v1_jws, "--tool", tool, "--force")
    assert p.returncode == 0 and "installing it anyway (--force)" in p.stdout, p.stdout + p.stderr
    assert back() == v1


def test_the_board_is_judged_by_its_own_files(vboard, tmp_path, keys):
    """A .bak left by a cut install counts as the installed pinset (as certpin.load() recovers it), and
    the board's time floor judges expiry even when this machine's clock does not."""
    b = vboard()
    a, k_b, _ = keys
    v1 = pinset_bytes(1, [a, k_b])
    v2 = pinset_bytes(2, [a, k_b], expires=today(20))
    with open(os.path.join(b.root, "certpin.json.bak"), "wb") as f:
        f.write(v1)
    v2_jws = write(tmp_path, "v2.jws", bundle(v2, [a]))
    # the board's floor is 30 days ahead of this machine: for it, v2 has expired
    with open(os.path.join(b.root, "certpin.floor"), "w") as f:
        f.write(today(30) + "\n")
    p = b.flash(v2_jws)
    assert p.returncode == 1 and "expired" in p.stderr, p.stdout + p.stderr
    assert "certpin.json.bak is there" in p.stdout
    os.remove(os.path.join(b.root, "certpin.floor"))
    p = b.flash(v2_jws)
    assert p.returncode == 0, p.stdout + p.stderr
    assert sha256_hex(os.path.join(b.root, "certpin.json")) == sha256_hex(write(tmp_path, "v2.json", v2))
    assert not os.path.exists(os.path.join(b.root, "certpin.json.bak"))  # the stale copy is gone


def test_lint_and_device_rules_apply_to_the_payload(vboard, tmp_path, keys):
    b = vboard()
    a, k_b, _ = keys
    with open(os.path.join(b.root, "certpin.json"), "wb") as f:
        f.write(pinset_bytes(1, [a, k_b]))
    single = pinset_bytes(2, [a, k_b], hosts={"api.example.com": {"pins": [fake_pin(1)]}})  # lint error
    p = b.flash(write(tmp_path, "s.jws", bundle(single, [a])))
    assert p.returncode == 1 and "lint found" in p.stderr and "--force" in p.stderr, p.stdout + p.stderr
    p = b.flash(write(tmp_path, "s.jws", bundle(single, [a])), "--force")
    assert p.returncode == 0, p.stdout + p.stderr
    # not a bundle at all, though named .jws: the board's reason
    p = b.flash(write(tmp_path, "junk.jws", b"hello"))
    assert p.returncode == 1 and "not_jws" in p.stderr, p.stdout + p.stderr
