"""The certificate that signs reports. `governance init` makes a small local authority (a CA
certificate and, under it, a signing certificate) so a fresh install signs from the first
report; an organisation replaces it with its own PKCS#12 bundle, issued by its own CA.

A reader trusts a report by trusting the CA certificate: `report verify --trust CA.pem`.
RSA-3072 with SHA-256: read by every PDF viewer, and it keeps the file PDF 1.7, which PDF/A-3
is built on (pyHanko declares PDF 2.0 and ISO 32002 for an ECDSA or Ed25519 signer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from governance.domain.errors import InputError

CA_CERT = "report-ca.pem"
CA_KEY = "report-ca-key.pem"
SIGNER_CERT = "report-signer.pem"
SIGNER_KEY = "report-signer-key.pem"
CA_YEARS = 10
SIGNER_YEARS = 3


@dataclass(frozen=True)
class SigningIdentity:
    """A private key, its certificate and the chain above it, as pyHanko takes them."""

    key: asn1_keys.PrivateKeyInfo
    certificate: asn1_x509.Certificate
    chain: tuple[asn1_x509.Certificate, ...]

    @property
    def subject(self) -> str:
        return str(self.certificate.subject.human_friendly)


def create_authority(directory: Path, organisation: str) -> list[Path]:
    """Write a CA and a report-signing certificate under it; never overwrite (reports signed
    before would no longer chain to the CA a reader was given)."""
    paths = [directory / name for name in (CA_CERT, CA_KEY, SIGNER_CERT, SIGNER_KEY)]
    existing = [path for path in paths if path.exists()]
    if existing:
        raise InputError(
            str(existing[0]), "exists already", "keep the report certificates, or move them away"
        )
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC) - timedelta(minutes=5)  # clocks of readers drift
    ca_key = _new_key()
    ca_name = _name(organisation, f"{organisation} governance report CA")
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, CA_YEARS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    signer_key = _new_key()
    signer = (
        _builder(
            _name(organisation, f"{organisation} governance reports"),
            ca_name,
            signer_key.public_key(),
            now,
            SIGNER_YEARS,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    for path, key in ((paths[1], ca_key), (paths[3], signer_key)):
        _write_private(path, key)
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        signer.public_bytes(serialization.Encoding.PEM)
        + ca.public_bytes(serialization.Encoding.PEM)
    )
    return paths


def load_identity(
    directory: Path, pkcs12: Path | None = None, passphrase: str | None = None
) -> SigningIdentity:
    """The organisation's PKCS#12 bundle when one is configured, else the local one."""
    if pkcs12 is not None:
        return _from_pkcs12(pkcs12, passphrase)
    cert_path, key_path = directory / SIGNER_CERT, directory / SIGNER_KEY
    if not cert_path.exists() or not key_path.exists():
        raise InputError(
            "report signing certificate",
            f"{cert_path} does not exist",
            "run `governance init`, or set GOVERNANCE_REPORT_PKCS12 to the organisation's "
            "PKCS#12 file",
        )
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    certificates = x509.load_pem_x509_certificates(cert_path.read_bytes())
    return _identity(key, certificates[0], certificates[1:])


def load_certificates(path: Path) -> list[asn1_x509.Certificate]:
    """Trust anchors from a PEM (one or more certificates) or a DER file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            str(path), f"cannot be read ({exc.strerror})", "name a certificate file"
        ) from None
    try:
        certificates = (
            x509.load_pem_x509_certificates(data)
            if b"-----BEGIN" in data
            else [x509.load_der_x509_certificate(data)]
        )
    except ValueError:
        raise InputError(
            str(path), "is not an X.509 certificate", "give the CA certificate (PEM or DER)"
        ) from None
    return [_asn1(certificate) for certificate in certificates]


def _from_pkcs12(path: Path, passphrase: str | None) -> SigningIdentity:
    try:
        key, certificate, chain = pkcs12.load_key_and_certificates(
            path.read_bytes(), passphrase.encode() if passphrase else None
        )
    except OSError as exc:
        raise InputError(
            "GOVERNANCE_REPORT_PKCS12", f"{path} cannot be read ({exc.strerror})", "fix the path"
        ) from None
    except ValueError:
        raise InputError(
            "GOVERNANCE_REPORT_PKCS12",
            f"{path} cannot be opened",
            "check the file and GOVERNANCE_REPORT_PKCS12_PASSWORD",
        ) from None
    if key is None or certificate is None:
        raise InputError(
            "GOVERNANCE_REPORT_PKCS12", f"{path} holds no key and certificate", "export both"
        )
    return _identity(key, certificate, chain)


def _identity(
    key: object, certificate: x509.Certificate, chain: list[x509.Certificate]
) -> SigningIdentity:
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise InputError(
            "report signing key", "is neither ECDSA nor RSA", "use an ECDSA or RSA key"
        )
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningIdentity(
        key=asn1_keys.PrivateKeyInfo.load(der),
        certificate=_asn1(certificate),
        chain=tuple(_asn1(c) for c in chain),
    )


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def _name(organisation: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: rsa.RSAPublicKey,
    now: datetime,
    years: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=365 * years))
    )


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=not cert_sign,  # non-repudiation: the signer stands by the report
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(pem)
