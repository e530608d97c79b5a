"""Hostile peers for the TLS attack matrix (tests/test_attack_matrix.py).

- BannerServer: a TLS server that speaks first (SMTP/MQTT-broker style): it
  writes application data right after its handshake, so a client that reads
  before it writes would see attacker bytes if the pin check came too late.
- AnonServer: TLS 1.2 with anonymous (aNULL) suites only: no certificate.
- RawServer: plain TCP that reads the ClientHello and then closes, sends
  garbage, sends a TLS record header announcing a huge record, or stays silent.
- PKI helpers: a chain of N intermediates, a leaf with a very large extension.
"""
import datetime
import os
import ssl

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.corpus import enc_len
from support.servers import Listener, TLSServer


class BannerServer(TLSServer):
    def __init__(self, *a, banner=b"220 attacker ready\r\n", **kw):
        super().__init__(*a, **kw)
        self.banner = banner

    def _handle(self, conn):
        conn.settimeout(10)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                self.handshakes += 1
                tls.sendall(self.banner)
                self._read_request(tls)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()


class AnonServer(TLSServer):
    """TLS 1.2, anonymous key exchange only (ADH/AECDH): the server sends no certificate."""

    def __init__(self, name="anon", host="127.0.0.1"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("aNULL:@SECLEVEL=0")
        super().__init__(name=name, host=host, reply=b"HTTP/1.0 200 OK\r\n\r\nhello from anon\n", ctx=ctx)
        self.errors = []

    def _handle(self, conn):
        conn.settimeout(10)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                self.handshakes += 1
                data = tls.recv(4096)
                self.received.append(data)
                if data:
                    tls.sendall(self.reply)
        except (OSError, ssl.SSLError) as e:
            self.errors.append(str(e))
        finally:
            conn.close()


class RawServer(Listener):
    """Plain TCP. mode: close | garbage | huge_record | alert | silent."""

    def __init__(self, mode, host="127.0.0.1"):
        super().__init__(host, backlog=16)
        self.mode = mode
        self.hellos = 0

    def _handle(self, conn):
        try:
            conn.settimeout(10)
            hello = conn.recv(16384)
            if hello[:1] == b"\x16":
                self.hellos += 1
            if self.mode == "garbage":
                conn.sendall(os.urandom(4096))
            elif self.mode == "huge_record":
                # A handshake record header announcing 65535 bytes, then a few.
                conn.sendall(b"\x16\x03\x03\xff\xff" + b"\x02" + os.urandom(64))
            elif self.mode == "alert":
                conn.sendall(b"\x15\x03\x03\x00\x02\x02\x28")  # fatal handshake_failure
            elif self.mode == "silent":
                self._stop.wait(30)
            if self.mode != "silent":
                conn.close()
        except OSError:
            pass


def long_chain_pki(directory, n_intermediates=8):
    """(root, [leaf, i_n, ..., i_1] PEMs, leaf key PEM, rogue leaf PEMs + key) with n intermediates."""
    root = trustme.CA(organization_name="certpin long-chain root")
    ca = root
    for _ in range(n_intermediates):
        ca = ca.create_child_ca()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    chain = [b.bytes() for b in leaf.cert_chain_pems]
    assert len(chain) == n_intermediates + 1, len(chain)
    return root, chain, leaf.private_key_pem.bytes()


def big_leaf(issuer_ca, ext_bytes, name="localhost"):
    """A leaf for `name` signed by trustme CA `issuer_ca`, carrying an opaque extension of ext_bytes bytes.

    Returns (chain PEMs [leaf, issuer], key PEM, leaf DER).
    """
    issuer_key = serialization.load_pem_private_key(issuer_ca.private_key_pem.bytes(), None)
    issuer_cert = x509.load_pem_x509_certificate(issuer_ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    t0 = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(t0)
        .not_valid_after(t0 + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.29157.1.2"), b"\x04" + enc_len(ext_bytes) + b"\xa5" * ext_bytes), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return [pem, issuer_ca.cert_pem.bytes()], key_pem, cert.public_bytes(serialization.Encoding.DER)


def serve_pems(directory, name, chain_pems, key_pem, cls=TLSServer, **kw):
    chain = os.path.join(directory, name + ".chain.pem")
    key = os.path.join(directory, name + ".key.pem")
    with open(chain, "wb") as f:
        f.write(b"".join(chain_pems))
    with open(key, "wb") as f:
        f.write(key_pem)
    return cls(chain, key, name=name, **kw).start()


# ------------------------------------------------------------------ forged certificate

def forged_leaf(public_key, issuer_ca, not_before, name="localhost", days=365):
    """A certificate for `name` carrying SOMEONE ELSE'S public key (e.g. the genuine
    pinned one), signed by trustme CA `issuer_ca`, valid from `not_before`. DER."""
    issuer_key = serialization.load_pem_private_key(issuer_ca.private_key_pem.bytes(), None)
    issuer_cert = x509.load_pem_x509_certificate(issuer_ca.cert_pem.bytes())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(issuer_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


class ForgedKeyServer(Listener):
    """A TLS 1.2 server that presents `chain_ders` (leaf first) although it does not
    hold the leaf's private key: its ServerKeyExchange is signed with `signing_key`
    (its own). Real TLS records; no TLS library would let a server do this, hence
    the hand-made handshake. A client sees (and may pin-match) the certificate,
    then must fail the handshake on the ServerKeyExchange signature.

    ECDHE-ECDSA-AES128-GCM-SHA256 on secp256r1 only, no session resumption.
    `hellos` counts ClientHellos; `app_bytes` stays empty (no handshake finishes).
    """

    def __init__(self, chain_ders, signing_key, host="127.0.0.1"):
        super().__init__(host, backlog=16)
        self.chain = chain_ders
        self.key = signing_key
        self.hellos = 0
        self.app_bytes = b""

    def _handle(self, conn):
        try:
            conn.settimeout(10)
            data = b""
            while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
                chunk = conn.recv(16384)
                if not chunk:
                    return
                data += chunk
            if data[0] != 0x16 or data[5] != 0x01:
                return
            self.hellos += 1
            client_random = data[11:43]
            server_random = os.urandom(32)
            eph = ec.generate_private_key(ec.SECP256R1())
            point = eph.public_key().public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint)
            params = b"\x03\x00\x17" + bytes([len(point)]) + point
            sig = self.key.sign(client_random + server_random + params, ec.ECDSA(hashes.SHA256()))

            def hs(t, body):
                return bytes([t]) + len(body).to_bytes(3, "big") + body

            ext = b"\xff\x01\x00\x01\x00" + b"\x00\x0b\x00\x02\x01\x00"  # renegotiation_info, ec_point_formats
            hello = b"\x03\x03" + server_random + b"\x00" + b"\xc0\x2b" + b"\x00" + len(ext).to_bytes(2, "big") + ext
            certs = b"".join(len(c).to_bytes(3, "big") + c for c in self.chain)
            ske = params + b"\x04\x03" + len(sig).to_bytes(2, "big") + sig
            msgs = hs(2, hello) + hs(11, len(certs).to_bytes(3, "big") + certs) + hs(12, ske) + hs(14, b"")
            conn.sendall(b"\x16\x03\x03" + len(msgs).to_bytes(2, "big") + msgs)
            conn.recv(4096)  # the client's alert, or its key exchange (never answered)
        except OSError:
            pass
        finally:
            conn.close()
