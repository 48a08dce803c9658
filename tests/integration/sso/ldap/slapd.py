"""Debian's OpenLDAP ``slapd`` on loopback ports, seeded from ``tests/idp/ldap/``.

One server per test session (per xdist worker): ``cn=config`` from ``slapd.ldif`` (``slapadd
-n0``, mdb, the memberof overlay), listening on ``ldap://`` (StartTLS offered) and ``ldaps://``
with a certificate signed by a throw-away CA made here with ``cryptography``. The people and
groups of ``directory.ldif`` are added over LDAP once it answers (so memberOf is filled in).
It runs in the foreground as our child and is stopped by PID. Every password is made up at
start and given to the secret canary: none may reach a log, a page or an API answer.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import canary

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
LDAPMODIFY = "/usr/bin/ldapmodify"
IDP_DIR = Path(__file__).resolve().parents[3] / "idp" / "ldap"
LOOPBACK = "127.0.0.1"
OTHER_LOOPBACK = "127.0.0.2"
START_TIMEOUT = 15.0

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
SERVICE_DN = f"cn=shipyard,ou=services,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank")


def available() -> bool:
    return all(Path(tool).exists() for tool in (SLAPD, SLAPADD, LDAPMODIFY))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def ssha(password: str) -> str:
    """An ``{SSHA}`` hash as ``slappasswd`` makes it (SHA-1 of password + 8-byte salt)."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - slapd's format
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


@dataclass(frozen=True)
class CertificateAuthority:
    """A throw-away CA (PEM) and the server certificate and key it signed for loopback."""

    ca_pem: str
    server_pem: str
    server_key_pem: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(
    common_name: str = "Shipyard test LDAP CA",
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def make_certificates() -> CertificateAuthority:
    """A CA and a server certificate for ``localhost`` and ``127.0.0.1``."""
    ca, ca_key = make_ca()
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return CertificateAuthority(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM).decode(),
        server_pem=server.public_bytes(serialization.Encoding.PEM).decode(),
        server_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


def other_ca_pem() -> str:
    """A CA that signed nothing the server shows: trusting only it must fail."""
    certificate, _ = make_ca("Somebody else's CA")
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Slapd:
    """A running slapd: where it listens, its CA and the made-up passwords."""

    run_dir: Path
    ldap_port: int
    ldaps_port: int
    ca_pem: str
    service_password: str
    root_password: str
    passwords: dict[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def ldap_url(self) -> str:
        return f"ldap://{LOOPBACK}:{self.ldap_port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{LOOPBACK}:{self.ldaps_port}"

    @staticmethod
    def user_dn(uid: str) -> str:
        return f"uid={uid},{PEOPLE}"

    @staticmethod
    def group_dn(cn: str) -> str:
        return f"cn={cn},{GROUPS}"

    def ldapmodify(self, ldif: str) -> None:
        """Change the directory as its root DN (password from a file, never a command line)."""
        result = subprocess.run(
            [
                LDAPMODIFY,
                "-x",
                "-H",
                self.ldap_url,
                "-D",
                ROOT_DN,
                "-y",
                str(self.run_dir / "root.pw"),
            ],
            input=ldif.encode(),
            capture_output=True,
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"ldapmodify failed: {result.stderr.decode().strip()}")

    def add_member(self, group: str, uid: str) -> None:
        self.ldapmodify(
            f"dn: {self.group_dn(group)}\nchangetype: modify\nadd: member\n"
            f"member: {self.user_dn(uid)}\n"
        )

    def remove_member(self, group: str, uid: str) -> None:
        self.ldapmodify(
            f"dn: {self.group_dn(group)}\nchangetype: modify\ndelete: member\n"
            f"member: {self.user_dn(uid)}\n"
        )

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None


def _password(what: str) -> str:
    return canary.remember(f"ldap-{secrets.token_urlsafe(12)}", what)


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")
            raise RuntimeError(f"slapd exited with {process.returncode}: {output[-2000:]}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"slapd did not listen on {port} within {START_TIMEOUT} s")


def start(run_dir: Path) -> Slapd:
    """Configure, start and seed a slapd under ``run_dir`` (made here, removed by the caller)."""
    run_dir.mkdir(parents=True)
    (run_dir / "data").mkdir()
    (run_dir / "slapd.d").mkdir()
    certificates = make_certificates()
    (run_dir / "ca.pem").write_text(certificates.ca_pem)
    (run_dir / "server.pem").write_text(certificates.server_pem)
    key_file = run_dir / "server.key"
    key_file.write_text(certificates.server_key_pem)
    key_file.chmod(0o600)

    root_password = _password("slapd root password")
    (run_dir / "root.pw").write_text(root_password)  # ldapmodify -y: no trailing newline
    (run_dir / "root.pw").chmod(0o600)
    config = (
        (IDP_DIR / "slapd.ldif")
        .read_text()
        .format(
            run_dir=run_dir,
            suffix=SUFFIX,
            root_dn=ROOT_DN,
            root_password_hash=ssha(root_password),
            service_dn=SERVICE_DN,
        )
    )
    (run_dir / "config.ldif").write_text(config)
    subprocess.run(
        [SLAPADD, "-n0", "-F", str(run_dir / "slapd.d"), "-l", str(run_dir / "config.ldif")],
        capture_output=True,
        check=True,
        timeout=30,
    )

    service_password = _password("LDAP service account password")
    passwords = {uid: _password(f"LDAP password of {uid}") for uid in USERS}
    server = Slapd(
        run_dir=run_dir,
        ldap_port=free_port(),
        ldaps_port=free_port(),
        ca_pem=certificates.ca_pem,
        service_password=service_password,
        root_password=root_password,
        passwords=passwords,
    )
    log = (run_dir / "slapd.log").open("wb")
    server.process = subprocess.Popen(
        [
            SLAPD,
            "-h",
            # 127.0.0.2 too: an address the certificate does not name.
            f"{server.ldap_url} {server.ldaps_url} ldaps://{OTHER_LOOPBACK}:{server.ldaps_port}",
            "-F",
            str(run_dir / "slapd.d"),
            "-d",
            "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        _wait_until_listening(server.process, server.ldap_port, run_dir / "slapd.log")
        _wait_until_listening(server.process, server.ldaps_port, run_dir / "slapd.log")
        hashes_by_name = {f"{uid}_hash": ssha(password) for uid, password in passwords.items()}
        directory = (
            (IDP_DIR / "directory.ldif")
            .read_text()
            .format(service_hash=ssha(service_password), **hashes_by_name)
        )
        _add_entries(server, directory)
    except BaseException:
        server.stop()
        raise
    return server


def _add_entries(server: Slapd, ldif: str) -> None:
    """Add every entry of ``ldif`` (``ldapmodify -a``: entries without a changetype)."""
    result = subprocess.run(
        [
            LDAPMODIFY,
            "-a",
            "-x",
            "-H",
            server.ldap_url,
            "-D",
            ROOT_DN,
            "-y",
            str(server.run_dir / "root.pw"),
        ],
        input=ldif.encode(),
        capture_output=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"seeding slapd failed: {result.stderr.decode().strip()}")


def remove(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
