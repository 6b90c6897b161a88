"""Certificates for the TLS tests, made at test time: python certs.py DIR.

DIR gets ca.pem (the test CA), server.pem/server.key (127.0.0.1 and localhost, serial 1001),
renewed.pem/renewed.key (the same names, serial 2002), expired.pem/expired.key (ended
yesterday), other.key (a key of no certificate here) and client.pem (a client certificate
and its key in one file, for mutual TLS), each signed by the CA.
"""

import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

out = Path(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc)
day = datetime.timedelta(days=1)


def key():
    return ec.generate_private_key(ec.SECP256R1())


def pem_key(k):
    return k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


ca_key = key()
ca = (
    x509.CertificateBuilder()
    .subject_name(name("failover-notify test CA"))
    .issuer_name(name("failover-notify test CA"))
    .public_key(ca_key.public_key())
    .serial_number(1)
    .not_valid_before(now - day)
    .not_valid_after(now + 30 * day)
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .add_extension(
        x509.KeyUsage(False, False, False, False, False, True, True, False, False),
        critical=True,
    )
    .sign(ca_key, hashes.SHA256())
)
(out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))


def leaf(serial, start, end, client=False):
    k = key()
    b = (
        x509.CertificateBuilder()
        .subject_name(name("failover-notify node" if client else "127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(k.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
    )
    if not client:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), pem_key(k)


for stem, serial, start, end in [
    ("server", 1001, now - day, now + 30 * day),
    ("renewed", 2002, now - day, now + 60 * day),
    ("expired", 3003, now - 30 * day, now - day),
]:
    cert, k = leaf(serial, start, end)
    (out / f"{stem}.pem").write_bytes(cert)
    (out / f"{stem}.key").write_bytes(k)
(out / "other.key").write_bytes(pem_key(key()))
cert, k = leaf(4004, now - day, now + 30 * day, client=True)
(out / "client.pem").write_bytes(cert + k)
