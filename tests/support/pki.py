"""Test PKI: a genuine root -> intermediate -> leaf chain and a rogue CA.

Built with trustme (cryptography underneath). Everything is written to a
directory as PEM and DER so device-side scripts (CPython or MicroPython) can
read them. Names are for "localhost" and 127.0.0.1.
"""
import base64
import hashlib
import os

import datetime
import ipaddress

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "localhost"


def der_of(pem_bytes):
    return x509.load_pem_x509_certificate(pem_bytes).public_bytes(serialization.Encoding.DER)


def spki_pin(cert_der):
    """The reference pin: sha256/<base64> of the SPKI, computed by cryptography."""
    cert = x509.load_der_x509_certificate(cert_der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def cert_pin(cert_der):
    return "cert-sha256/" + base64.b64encode(hashlib.sha256(cert_der).digest()).decode()


class Leaf:
    """A server identity: key, and the chain it serves (leaf first)."""

    def __init__(self, name, key_pem, chain_pems):
        self.name = name
        self.key_pem = key_pem
        self.chain_pems = list(chain_pems)
        self.chain_ders = [der_of(p) for p in self.chain_pems]

    @property
    def der(self):
        return self.chain_ders[0]

    @property
    def pin(self):
        return spki_pin(self.der)

    def write(self, directory):
        """Write <name>.chain.pem / <name>.key.pem (and <name>.key.der, <name>.<i>.der);
        returns (chain_path, key_path)."""
        chain = os.path.join(directory, self.name + ".chain.pem")
        key = os.path.join(directory, self.name + ".key.pem")
        with open(chain, "wb") as f:
            f.write(b"".join(self.chain_pems))
        with open(key, "wb") as f:
            f.write(self.key_pem)
        with open(os.path.join(directory, self.name + ".key.der"), "wb") as f:  # MicroPython loads DER keys only
            f.write(serialization.load_pem_private_key(self.key_pem, None).private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        for i, der in enumerate(self.chain_ders):
            with open(os.path.join(directory, "%s.%d.der" % (self.name, i)), "wb") as f:
                f.write(der)
        return chain, key


class PKI:
    def __init__(self, directory, key_type=trustme.KeyType.ECDSA):
        self.dir = directory
        self.root = trustme.CA(organization_name="certpin genuine root", key_type=key_type)
        self.intermediate = self.root.create_child_ca(key_type=key_type)
        self.rogue = trustme.CA(organization_name="certpin rogue CA", key_type=key_type)

        g = self.intermediate.issue_cert(HOST, "127.0.0.1", common_name=HOST, key_type=key_type)
        # trustme's chain for g is [leaf, intermediate] (root not sent, as real servers do).
        self.genuine = Leaf("genuine", g.private_key_pem.bytes(), [b.bytes() for b in g.cert_chain_pems])
        # A second genuine key for the same name: what a rotation looks like.
        g2 = self.intermediate.issue_cert(HOST, "127.0.0.1", common_name=HOST, key_type=key_type)
        self.rotated = Leaf("rotated", g2.private_key_pem.bytes(), [b.bytes() for b in g2.cert_chain_pems])

        r = self.rogue.issue_cert(HOST, "127.0.0.1", common_name=HOST, key_type=key_type)
        self.rogue_leaf = Leaf("rogue", r.private_key_pem.bytes(), [b.bytes() for b in r.cert_chain_pems])
        # The attacker's own leaf followed by the *genuine* intermediate (a public
        # certificate anyone can copy): a lax checker that accepts a pin at any
        # depth without chain validation is fooled by this.
        self.attacker_with_genuine_intermediate = Leaf(
            "attacker-gi",
            r.private_key_pem.bytes(),
            [r.cert_chain_pems[0].bytes(), self.intermediate.cert_pem.bytes()],
        )

        self.root_pem = self.root.cert_pem.bytes()
        self.root_der = der_of(self.root_pem)
        self.intermediate_der = der_of(self.intermediate.cert_pem.bytes())
        self.rogue_root_der = der_of(self.rogue.cert_pem.bytes())
        os.makedirs(directory, exist_ok=True)
        for leaf in self.leaves():
            leaf.write(directory)
        for name, der in (("root", self.root_der), ("intermediate", self.intermediate_der), ("rogue-root", self.rogue_root_der)):
            with open(os.path.join(directory, name + ".der"), "wb") as f:
                f.write(der)
        with open(os.path.join(directory, "root.pem"), "wb") as f:
            f.write(self.root_pem)
        with open(os.path.join(directory, "rogue-root.pem"), "wb") as f:
            f.write(self.rogue.cert_pem.bytes())

    def issue_for_key(self, name, key_pem):
        """A genuine leaf for HOST whose key is ``key_pem`` (e.g. a backup key from
        `certpin keygen`), signed by the genuine intermediate: what a CA returns for
        a CSR of that key, i.e. a server rotating to its backup key."""
        ca_cert = x509.load_pem_x509_certificate(self.intermediate.cert_pem.bytes())
        ca_key = serialization.load_pem_private_key(self.intermediate.private_key_pem.bytes(), None)
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
            .issuer_name(ca_cert.subject)
            .public_key(serialization.load_pem_private_key(key_pem, None).public_key())
            .serial_number(x509.random_serial_number())
            # a day back: notBefore stays before the pinset's `issued`, so a
            # matched pin does not move the device's time floor
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        leaf = Leaf(name, key_pem, [cert.public_bytes(serialization.Encoding.PEM), self.intermediate.cert_pem.bytes()])
        leaf.write(self.dir)
        return leaf

    def leaves(self):
        return [self.genuine, self.rotated, self.rogue_leaf, self.attacker_with_genuine_intermediate]

    def path(self, name):
        return os.path.join(self.dir, name)

    @property
    def root_pin(self):
        return spki_pin(self.root_der)

    @property
    def intermediate_pin(self):
        return spki_pin(self.intermediate_der)

    @property
    def rogue_root_pin(self):
        return spki_pin(self.rogue_root_der)
