"""Run a device-side scenario (tests/device/client.py) and return its result dict."""
import json
import os


def pinset_text(host_pins, expires=None, serial=None, **entry):
    hosts = {}
    for host, pins in host_pins.items():
        e = {"pins": list(pins)}
        e.update(entry)
        hosts[host] = e
    d = {"format": 1, "hosts": hosts}
    if expires:
        d["expires"] = expires
    if serial is not None:
        d["serial"] = serial
    return json.dumps(d)


def run_client(runtime, tmp_path, port, pins=None, text=None, host="localhost", cadata=None,
               mode="blocking", fake_date=None, floor=None, ntp=None, name="cfg", **pinset_kw):
    if text is None:
        text = pinset_text({host.lower().rstrip("."): pins}, **pinset_kw)
    cfg = {"pinset_text": text, "host": host, "port": port, "mode": mode, "addr": "127.0.0.1"}
    if cadata:
        cfg["cadata"] = list(cadata)
    if fake_date:
        cfg["fake_date"] = list(fake_date)
    if floor:
        cfg["floor"] = floor
    if ntp:
        cfg["ntp"] = list(ntp)
    path = os.path.join(str(tmp_path), name + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    p = runtime.run("client.py", path)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, "no result from %s: rc=%s\nstdout=%s\nstderr=%s" % (runtime, p.returncode, p.stdout, p.stderr)
    out = json.loads(lines[-1])
    assert out["runtime"] == runtime.name
    return out


def fresh(servers, name):
    """servers[name] with its record of received application bytes cleared."""
    s = servers[name]
    s.received.clear()
    return s
