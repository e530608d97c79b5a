# certpin.install() scenarios, driven by a config file: libraries nobody here
# wrote (requests, mip, asyncio, umqtt.simple) and the plain tls/ssl calls,
# after one install() call. Usage: install_client.py CONFIG.json; prints one
# JSON result line (after whatever the libraries print).
#
# CONFIG: {"pinset_text": str, "cadata": [DER paths], "others": "refuse"|"ca",
# "install": true (false: no install() call), "before": [module names to
# import before install(), e.g. "early_refs", "early_ctx"], "main_tls": true
# (this script imports tls before install() too), "mode": see run(), "host",
# "port", "url", "target" (mip), "client_cert": [cert DER, key DER paths],
# "server": [cert DER, key DER paths] (mode "asyncio_server"), "uninstall": true
# (uninstall() before connecting), "reinstall_text": a second pinset,
# "default_pinset": true (install() with no pinset: it loads /certpin.json,
# which the test machine does not have), "install_may_fail": true (record
# install()'s error as "install_error" and go on, as main.py runs after a
# boot.py that raised), "reinstall": true (install() a second time, its error
# recorded as "reinstall_error").}
#
# Runs on the unix port and on the real builds of ../shared/runtimes: v1.20
# (ussl.wrap_socket only, urequests, no tls/SSLContext), v1.22 (C ssl module);
# "oldfw": [version, peercert] simulates 1.19 or 1.21 with tests/device/oldfw.py.
import json
import sys

cfg = json.load(open(sys.argv[1]))
if cfg.get("oldfw"):  # [version, peercert]: the stand-ins of oldfw.py for firmware without a build here
    import oldfw

    oldfw.install(*cfg["oldfw"])
for name in cfg.get("before", ()):
    __import__(name)
if cfg.get("main_tls"):
    import tls as main_tls  # noqa: F401  (held by __main__ before install)

import certpin  # noqa: E402

out = {}


def read_file(p):
    with open(p, "rb") as f:
        return f.read()


def install():
    cadata = [read_file(p) for p in cfg["cadata"]] if cfg.get("cadata") else None
    kw = {"others": cfg["others"]} if "others" in cfg else {}
    pinset = None if cfg.get("default_pinset") else certpin.loads(cfg["pinset_text"])
    try:
        certpin.install(pinset, cadata, **kw)
    except Exception as e:  # a certpin.Error, or anything else install() let through (recorded as such)
        if not cfg.get("install_may_fail"):
            raise
        out["install_error"] = [type(e).__name__, e.args[0] if e.args else ""]
    if cfg.get("reinstall"):
        try:
            certpin.install(pinset, cadata, **kw)
            out["reinstall_error"] = None
        except Exception as e:
            out["reinstall_error"] = [type(e).__name__, e.args[0] if e.args else ""]
    if cfg.get("reinstall_text"):
        certpin.install(certpin.loads(cfg["reinstall_text"]), cadata, **kw)
    if cfg.get("uninstall"):
        certpin.uninstall()


def connected_socket():
    import socket

    ai = socket.getaddrinfo("127.0.0.1", cfg["port"], 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    s.connect(ai[-1])
    return s


def request(s):
    s.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = s.read(512)
        if not chunk:
            s.close()
            return data
        data += chunk


def asyncio_request(host, port, **kw):
    import asyncio

    async def go():
        r, w = await asyncio.open_connection(host, port, **kw)
        try:
            w.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            await w.drain()
            data = b""
            while True:
                chunk = await r.read(512)
                if not chunk:
                    return data
                data += chunk
        finally:
            w.close()
            await w.wait_closed()

    return asyncio.run(go())


def asyncio_server():
    # A TLS server (passes through install() untouched) and a pinned client
    # to it, in one event loop.
    import asyncio
    import ssl

    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(read_file(cfg["server"][0]), read_file(cfg["server"][1]))

    async def handle(r, w):
        line = await r.readline()
        w.write(b"HTTP/1.0 200 OK\r\n\r\nhello from the micropython server, you sent " + line.strip() + b"\n")
        await w.drain()
        w.close()
        await w.wait_closed()

    async def go():
        srv = await asyncio.start_server(handle, "127.0.0.1", cfg["port"], ssl=sctx)
        try:
            r, w = await asyncio.open_connection(cfg["host"], cfg["port"], ssl=True)
            w.write(b"GET / HTTP/1.0\r\n\r\n")
            await w.drain()
            data = b""
            while True:
                chunk = await r.read(512)
                if not chunk:
                    break
                data += chunk
            w.close()
            return data
        finally:
            srv.close()
            await srv.wait_closed()

    return asyncio.run(go())


def ussl_server():
    # ussl.wrap_socket(server_side=True, ...) on a thread (the old libraries'
    # server call passes through untouched), and a pinned client to it.
    import socket
    import time

    import _thread
    import ussl

    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(socket.getaddrinfo("127.0.0.1", cfg["port"])[0][-1])
    ls.listen(1)
    served = []

    def serve():
        c, _ = ls.accept()
        try:
            s = ussl.wrap_socket(c, server_side=True, cert=read_file(cfg["server"][0]), key=read_file(cfg["server"][1]))
            served.append(s.readline())
            s.write(b"HTTP/1.0 200 OK\r\n\r\nhello from the ussl server\n")
            s.close()
        except Exception as e:
            served.append(repr(e).encode())
            c.close()

    _thread.start_new_thread(serve, ())
    try:
        return request(ussl.wrap_socket(connected_socket(), server_hostname=cfg["host"]))
    finally:
        for _ in range(100):
            if served:
                break
            time.sleep_ms(20)
        out["served"] = [x.decode() for x in served]
        ls.close()


def mqtt():
    from umqtt.simple import MQTTClient

    got = []
    params = {"server_hostname": cfg["host"]} if cfg.get("sni", True) else {}
    c = MQTTClient("certpin-device", cfg["host"], cfg["port"], ssl=True, ssl_params=params)
    c.set_callback(lambda topic, msg: got.append([topic.decode(), msg.decode()]))
    c.connect()
    c.subscribe(b"certpin/test")
    c.publish(b"certpin/test", b"hello through the pinned connection")
    c.wait_msg()
    out["socket"] = type(c.sock).__name__
    c.disconnect()
    return json.dumps(got)


def run():
    mode, host, port = cfg["mode"], cfg.get("host"), cfg.get("port")
    if mode == "requests":
        try:
            import requests
        except ImportError:  # v1.20: urequests
            import urequests as requests

        out["lib"] = requests.__name__
        r = requests.get(cfg["url"])
        out["status"] = r.status_code
        return r.content
    if mode == "mip":
        import os

        import mip

        mip.install("hello", index=cfg["url"], target=cfg["target"], mpy=False)
        return read_file(cfg["target"] + "/hello.py") if "hello.py" in os.listdir(cfg["target"]) else b""
    if mode == "asyncio":
        return asyncio_request(host, port, ssl=True)
    if mode == "asyncio_server":
        return asyncio_server()
    if mode == "mqtt":
        return mqtt()
    if mode == "ussl_server":
        return ussl_server()
    if mode == "tls":  # what requests does: its own context, CERT_NONE
        import tls

        c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        c.verify_mode = tls.CERT_NONE
        return request(c.wrap_socket(connected_socket(), server_hostname=host))
    if mode == "ssl_context":
        import ssl

        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.verify_mode = ssl.CERT_NONE
        return request(c.wrap_socket(connected_socket(), server_hostname=host))
    if mode == "ssl_wrap_socket":
        import ssl

        return request(ssl.wrap_socket(connected_socket(), server_hostname=host))
    if mode == "ussl":  # umqtt.simple 1.3.4's call, with an optional client certificate
        import ussl

        kw = {"server_hostname": host} if host else {}
        if cfg.get("client_cert"):
            kw["cert"], kw["key"] = read_file(cfg["client_cert"][0]), read_file(cfg["client_cert"][1])
        return request(ussl.wrap_socket(connected_socket(), **kw))
    if mode == "early_refs":  # references taken before install(): each one must be pinned
        import early_refs as e

        res = []
        for f in (
            lambda s: e.tls.SSLContext(e.tls.PROTOCOL_TLS_CLIENT).wrap_socket(s, server_hostname=host),
            lambda s: e.SSLContext(e.tls.PROTOCOL_TLS_CLIENT).wrap_socket(s, server_hostname=host),
            lambda s: e.ssl_SSLContext(e.ssl.PROTOCOL_TLS_CLIENT).wrap_socket(s, server_hostname=host),
            lambda s: e.wrap_socket(s, server_hostname=host),
            lambda s: main_tls.SSLContext(main_tls.PROTOCOL_TLS_CLIENT).wrap_socket(s, server_hostname=host),
        ):
            try:
                res.append("ok" if b"hello from" in request(f(connected_socket())) else "no reply")
            except Exception as x:
                res.append(type(x).__name__)
        return json.dumps(res)
    if mode == "early_module_names":
        import early_refs as e
        import tls

        return json.dumps([tls.__name__, e.tls is tls, e.ssl.tls is tls, main_tls is tls, e.SSLContext is tls.SSLContext, "ussl" in sys.modules])
    if mode == "api":  # what the application sees of the TLS modules after install()
        import ssl
        import ussl

        return json.dumps([hasattr(ssl, "SSLContext"), hasattr(ussl, "SSLContext"), ssl is ussl,
                           ssl.CERT_REQUIRED, hasattr(ssl, "wrap_socket"), ssl.__name__])
    if mode == "early_attrs":  # references held as class and object attributes (early_attrs.py)
        import early_attrs as e

        def via_module(m):
            if hasattr(m, "SSLContext"):
                return lambda s: m.SSLContext(m.PROTOCOL_TLS_CLIENT).wrap_socket(s, server_hostname=host)
            return lambda s: m.wrap_socket(s, server_hostname=host)

        paths = [via_module(e.Holder.tls_module), via_module(e.OBJ.inner.tls_module)]
        if e.Holder.ctx_class:
            paths.append(lambda s: e.Holder.ctx_class(e.tls.PROTOCOL_TLS_CLIENT).wrap_socket(s, server_hostname=host))
        if e.Holder.wrap:
            paths.append(lambda s: e.Holder.wrap(s, server_hostname=host))
        res = []
        for f in paths:
            try:
                res.append("ok" if b"hello from" in request(f(connected_socket())) else "no reply")
            except Exception as x:
                res.append(type(x).__name__)
        return json.dumps(res)
    if mode == "subclasses":  # classes derived from SSLContext before install() (early_sub.py)
        import early_sub as e

        res = []
        for f in (
            lambda: e.Ctx(),
            lambda: e.trust(e.Deeper(e.tls.PROTOCOL_TLS_CLIENT)),
            lambda: e.trust(e.Holder.ctx_class(e.tls.PROTOCOL_TLS_CLIENT)),
            lambda: e.trust(e.BOX.ctx_class(e.tls.PROTOCOL_TLS_CLIENT)),
            lambda: e.EARLY,
            # a server context (unpinned, it would wait for a ClientHello: tried only under install())
            lambda: e.SERVER if cfg.get("install", True) and not cfg.get("uninstall") else None,
        ):
            try:
                c = f()  # under install(), making one is refused already
                if c is None:
                    continue
                r = request(c.wrap_socket(connected_socket(), server_hostname=host))
                res.append(["ok", r.decode()[-30:]])
            except Exception as x:
                res.append([type(x).__name__, x.args[0] if x.args else ""])
        try:  # a method of its own reaching the firmware's wrap_socket through super()
            r = request(e.trust(e.Sneaky(e.tls.PROTOCOL_TLS_CLIENT)).open(connected_socket(), host))
            res.append(["ok", r.decode()[-30:]])
        except Exception as x:
            res.append([type(x).__name__, x.args[0] if x.args else ""])
        return json.dumps(res)
    if mode == "late_subclass":  # a class derived from tls.SSLContext after install(): certpin's
        try:
            import tls
        except ImportError:
            import ssl as tls

        class Late(tls.SSLContext):
            def __init__(self):
                super().__init__(tls.PROTOCOL_TLS_CLIENT)
                self.verify_mode = tls.CERT_NONE

        return request(Late().wrap_socket(connected_socket(), server_hostname=host))
    if mode == "probe":  # the context checks that need no connection
        import tls

        res = []
        for f in (
            lambda: tls.SSLContext(tls.PROTOCOL_DTLS_CLIENT),
            lambda: setattr(tls.SSLContext(tls.PROTOCOL_TLS_CLIENT), "verify_callback", lambda c, d: 0),
            lambda: tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).wrap_socket(connected_socket(), server_side=True),
            lambda: tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).wrap_socket(connected_socket(), server_hostname="localhost\x00.example.org"),
            lambda: type(tls.SSLContext(tls.PROTOCOL_TLS_SERVER)).__name__,
        ):
            try:
                res.append(["ok", str(f())])
            except Exception as e:
                res.append([type(e).__name__, e.args[0] if e.args else ""])
        return json.dumps(res)
    raise ValueError("unknown mode " + mode)


try:
    if cfg.get("install", True):
        install()
    reply = run()
    out.update({"ok": True, "reply": reply.decode() if isinstance(reply, bytes) else str(reply)})
except certpin.Error as e:
    out.update({"ok": False, "type": type(e).__name__, "message": e.args[0] if e.args else ""})
except Exception as e:
    out.update({"ok": False, "type": type(e).__name__, "message": str(e)})
out["runtime"] = sys.implementation.name
print(json.dumps(out))
