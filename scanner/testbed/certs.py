"""Mint a private test PKI with ``cryptography``: a root CA, an intermediate, and leaf certificates.

Used by the tests and by ``pledgescan demo`` (no network, no root, no OpenSSL command line except for
SHA-1 signatures, which ``cryptography`` refuses to make)::

    pki = TestPKI.create()
    good = pki.leaf(["good.test"])                           # valid 90 days, chain = leaf + intermediate
    expired = pki.leaf(["old.test"], days=(-60, -1))
    pki.write_ca_bundle(path)                                # the root, for --ca-bundle

Every ``Issued`` has ``chain_pem`` (what a server sends) and ``key_pem``; ``write(dir, name)`` puts them
in files for servers that need paths.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyKind = Literal["rsa2048", "rsa1024", "ec256", "ec384"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_key(kind: KeyKind = "rsa2048") -> PrivateKey:
    """A fresh private key of the given kind."""
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "rsa1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pledgescan testbed"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Issued:
    """A certificate with its key, and the chain a server should send (leaf first)."""

    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...]  # as served: leaf + intermediates (may omit some on purpose)

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)

    @property
    def chain_pem(self) -> bytes:
        return b"".join(cert_pem(c) for c in self.chain)

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write ``NAME.chain.pem`` and ``NAME.key.pem``; returns their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        chain, key = directory / f"{name}.chain.pem", directory / f"{name}.key.pem"
        chain.write_bytes(self.chain_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return chain, key


def _ca_cert(
    subject: x509.Name,
    issuer: x509.Name,
    pub: object,
    signer: PrivateKey,
    issuer_pub: object,
    days: int,
    path_len: int | None,
) -> x509.Certificate:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(pub)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)  # type: ignore[arg-type]
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_pub),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(signer, hashes.SHA256())
    )


@dataclass(frozen=True)
class TestPKI:
    """A private root CA and one intermediate CA under it."""

    root: Issued
    intermediate: Issued

    __test__ = False  # not a pytest test class

    @classmethod
    def create(cls, name: str = "pledgescan test") -> TestPKI:
        root_key = new_key("ec256")
        root_name = _name(f"{name} root CA")
        root = _ca_cert(
            root_name, root_name, root_key.public_key(), root_key, root_key.public_key(), 3650, None
        )
        inter_key = new_key("ec256")
        inter = _ca_cert(
            _name(f"{name} intermediate CA"),
            root_name,
            inter_key.public_key(),
            root_key,
            root_key.public_key(),
            1825,
            0,
        )
        return cls(Issued(root, root_key, (root,)), Issued(inter, inter_key, (inter, root)))

    @property
    def ca_pem(self) -> bytes:
        """The root certificate, PEM: what ``--ca-bundle`` should point to."""
        return self.root.cert_pem

    def write_ca_bundle(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.ca_pem)
        return path

    def leaf(
        self,
        hosts: list[str],
        *,
        days: tuple[int, int] = (-1, 90),
        key: KeyKind = "rsa2048",
        include_intermediate: bool = True,
        self_signed: bool = False,
    ) -> Issued:
        """A server certificate for ``hosts`` (DNS names or IP addresses).

        ``days`` is (not_before, not_after) relative to now; ``include_intermediate=False`` serves the
        leaf alone (an incomplete chain); ``self_signed=True`` makes it sign itself.
        """
        leaf_key = new_key(key)
        now = _now()
        subject = _name(hosts[0])
        signer_key = leaf_key if self_signed else self.intermediate.key
        issuer = subject if self_signed else self.intermediate.cert.subject
        issuer_pub = leaf_key.public_key() if self_signed else self.intermediate.key.public_key()
        builder = _leaf_builder(
            hosts,
            subject,
            issuer,
            leaf_key,
            issuer_pub,
            now + dt.timedelta(days=days[0]),
            now + dt.timedelta(days=days[1]),
        )
        cert = builder.sign(signer_key, hashes.SHA256())
        if self_signed:
            chain: tuple[x509.Certificate, ...] = (cert,)
        elif include_intermediate:
            chain = (cert, self.intermediate.cert)
        else:
            chain = (cert,)
        return Issued(cert, leaf_key, chain)

    def leaf_sha1(self, hosts: list[str], *, days: int = 90) -> Issued:
        """A leaf signed by the intermediate with SHA-1, through the ``openssl`` command line.

        ``cryptography`` refuses SHA-1 signatures; tests only (needs the ``openssl`` binary).
        """
        openssl = shutil.which("openssl")
        if not openssl:
            raise RuntimeError("the openssl command line is needed to mint a SHA-1 signed certificate")
        leaf_key = new_key("rsa2048")
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(_name(hosts[0]))
            .sign(leaf_key, hashes.SHA256())
        )
        sans = ",".join(_san_text(h) for h in hosts)
        ext = (
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        )
        with tempfile.TemporaryDirectory(prefix="pledgescan-sha1-") as tmp:
            d = Path(tmp)
            (d / "req.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
            (d / "ca.pem").write_bytes(self.intermediate.cert_pem)
            (d / "ca.key").write_bytes(self.intermediate.key_pem)
            (d / "ext.cnf").write_text(ext)
            subprocess.run(
                [
                    openssl,
                    "x509",
                    "-req",
                    "-sha1",
                    "-in",
                    str(d / "req.csr"),
                    "-CA",
                    str(d / "ca.pem"),
                    "-CAkey",
                    str(d / "ca.key"),
                    "-set_serial",
                    str(x509.random_serial_number()),
                    "-days",
                    str(days),
                    "-extfile",
                    str(d / "ext.cnf"),
                    "-out",
                    str(d / "leaf.pem"),
                ],
                check=True,
                capture_output=True,
            )
            cert = x509.load_pem_x509_certificate((d / "leaf.pem").read_bytes())
        return Issued(cert, leaf_key, (cert, self.intermediate.cert))


def _san_text(host: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"DNS:{host}"
    return f"IP:{host}"


def _general_name(host: str) -> x509.GeneralName:
    import ipaddress

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _leaf_builder(
    hosts: list[str],
    subject: x509.Name,
    issuer: x509.Name,
    key: PrivateKey,
    issuer_pub: object,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_pub),  # type: ignore[arg-type]
            critical=False,
        )
    )
