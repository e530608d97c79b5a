"""flash's lint gate gives the same verdict as `certpin pinset lint [--strict]`."""
import json

import pytest

from certpin_host.cmd_flash import check_pinset
from certpin_host.errors import UserError


def write(tmp_path, pins, **top):
    d = {"format": 1, "hosts": {"api.example.com": {"pins": pins}}}
    d.update(top)
    p = tmp_path / "pins.json"
    p.write_text(json.dumps(d))
    return str(p)


def pin(n):
    import base64

    return "sha256/" + base64.b64encode(bytes([n]) * 32).decode()


def test_warnings_only_flash_unless_strict(tmp_path):
    path = write(tmp_path, [pin(1), pin(2)])  # no serial, no expires: warnings, not errors
    log = []
    check_pinset(path, force=False, log=log.append)
    assert any("warning" in line for line in log)
    with pytest.raises(UserError) as e:
        check_pinset(path, force=False, log=log.append, strict=True)
    assert e.value.status == 1


def test_errors_refused_unless_force(tmp_path):
    path = write(tmp_path, [pin(1)], serial=1, expires="2027-06-30")  # single pin: a governance error
    with pytest.raises(UserError, match="--force"):
        check_pinset(path, force=False, log=lambda m: None)
    check_pinset(path, force=True, log=lambda m: None)


def test_device_refusal_is_final(tmp_path):
    path = write(tmp_path, ["sha256/nope", pin(2)])
    with pytest.raises(UserError, match="device would refuse"):
        check_pinset(path, force=True, log=lambda m: None)
