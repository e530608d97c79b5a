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
               mode="blocking", fake_date=None, floor=None, ntp=None, name="cfg", cadata_bytearray=False, **pinset_kw):
    if text is None:
        text = pinset_text({host.lower().rstrip("."): pins}, **pinset_kw)
    cfg = {"pinset_text": text, "host": host, "port": port, "mode": mode, "addr": "127.0.0.1"}
    if cadata:
        cfg["cadata"] = list(cadata)
        cfg["cadata_bytearray"] = cadata_bytearray
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
    """servers[name] with its record of received application bytes (and of
    requested paths, for an HTTPSServer) cleared."""
    s = servers[name]
    s.received.clear()
    if hasattr(s, "paths"):
        s.paths.clear()
    return s


def run_install_client(runtime, tmp_path, cfg, name="cfg", extra_path=()):
    """Run tests/device/install_client.py (certpin.install() scenarios) with
    ``cfg``; ``extra_path``: more module directories (MICROPYPATH/PYTHONPATH)."""
    import subprocess

    path = os.path.join(str(tmp_path), name + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    env = runtime.env()
    key = "PYTHONPATH" if runtime.name == "cpython" else "MICROPYPATH"  # a real build (firmware()) too
    sep = os.pathsep if runtime.name == "cpython" else ":"
    env[key] = sep.join(list(extra_path) + [env[key]])
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "device", "install_client.py")
    p = subprocess.run(runtime.command() + [script, path], env=env, capture_output=True, text=True, timeout=60)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, "no result from %s: rc=%s\nstdout=%s\nstderr=%s" % (runtime, p.returncode, p.stdout, p.stderr)
    out = json.loads(lines[-1])
    assert out["runtime"] == ("cpython" if runtime.name == "cpython" else "micropython"), out
    out["stdout"] = p.stdout
    return out
