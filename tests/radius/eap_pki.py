"""A small PKI the EAP tests make: a CA, the server's certificate, client certificates
(good, expired, revoked, from an unknown CA) and the CA's CRL, as PEM files."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    cn: str,
    key: Key,
    issuer: tuple[x509.Name, Key] | None,
    ca: bool,
    usage: x509.ObjectIdentifier | None,
    start: float = -1.0,
    days: float = 30.0,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer else (_name(cn), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=start))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    crl: Path

    def client(self, stem: str) -> tuple[Path, Path]:
        return self.dir / f"{stem}.crt", self.dir / f"{stem}.key"


def make_pki(directory: Path, clients: tuple[str, ...] = ("alice",)) -> Pki:
    """CA ``netd-test-ca``; server ``radius.test``; a client certificate per name in
    ``clients`` (CN = the name); ``expired`` (CN alice, expired), ``revoked`` (CN alice,
    in the CRL) and ``stranger`` (CN alice, from another CA)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("netd-test-ca", ca_key, None, True, None, days=365)
    issuer = (ca.subject, ca_key)

    def write(stem: str, cert: x509.Certificate, key: Key) -> None:
        (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{stem}.key").write_bytes(_key_pem(key))

    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert("radius.test", server_key, issuer, False, ExtendedKeyUsageOID.SERVER_AUTH)
    write("server", server, server_key)
    for name in clients:
        key = ec.generate_private_key(ec.SECP256R1())
        write(name, _cert(name, key, issuer, False, ExtendedKeyUsageOID.CLIENT_AUTH), key)
    key = ec.generate_private_key(ec.SECP256R1())
    expired = _cert(
        "alice", key, issuer, False, ExtendedKeyUsageOID.CLIENT_AUTH, start=-10, days=-1
    )
    write("expired", expired, key)
    key = ec.generate_private_key(ec.SECP256R1())
    revoked = _cert("alice", key, issuer, False, ExtendedKeyUsageOID.CLIENT_AUTH)
    write("revoked", revoked, key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _cert("other-ca", other_key, None, True, None, days=365)
    key = ec.generate_private_key(ec.SECP256R1())
    write(
        "stranger",
        _cert("alice", key, (other.subject, other_key), False, ExtendedKeyUsageOID.CLIENT_AUTH),
        key,
    )
    now = dt.datetime.now(dt.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - dt.timedelta(days=1))
        .next_update(now + dt.timedelta(days=30))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(revoked.serial_number)
            .revocation_date(now - dt.timedelta(hours=1))
            .build()
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return Pki(
        directory,
        directory / "ca.crt",
        directory / "server.crt",
        directory / "server.key",
        directory / "ca.crl",
    )
