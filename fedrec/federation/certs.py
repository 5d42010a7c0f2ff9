"""TLS certificates and SuperNode authentication keys for a Flower deployment.

``make_tls_certificates`` writes a private CA and a server certificate signed by it, in the
files Flower's flags take::

    flower-superlink --ssl-ca-certfile ca.crt --ssl-certfile server.pem --ssl-keyfile server.key
    flower-supernode --root-certificates ca.crt

``make_supernode_keys`` writes one key pair per SuperNode for ``--enable-supernode-auth``::

    flwr supernode register <name>.pub
    flower-supernode --auth-supernode-private-key <name>.key

Existing files are never replaced unless the caller asks (``overwrite=True``): a CA that is
silently regenerated breaks every SuperNode that trusts the old one. Private keys are written
unencrypted with mode 0600; ``ca.key`` is only needed to issue certificates, not to run.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedrec.errors import ConfigError

log = logging.getLogger("fedrec.federation")

# The hosts the CLI puts in the server certificate when none are given: a local deployment.
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")

# Backdate certificates a little so a SuperNode whose clock runs behind still accepts them.
_CLOCK_SKEW = dt.timedelta(minutes=5)
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# Node key files share a folder with the TLS files; these names would collide with them.
_RESERVED_NODE_NAMES = frozenset({"ca", "server"})


@dataclass(frozen=True)
class TlsFiles:
    """Where ``make_tls_certificates`` wrote the CA and the SuperLink's certificate."""

    ca_cert: Path  # ca.crt: --ssl-ca-certfile (SuperLink), --root-certificates (SuperNode, flwr)
    ca_key: Path  # ca.key: signs certificates; keep it off the servers
    server_cert: Path  # server.pem: --ssl-certfile
    server_key: Path  # server.key: --ssl-keyfile


@dataclass(frozen=True)
class NodeKeys:
    """One SuperNode's authentication key pair (EC P-384, OpenSSH format)."""

    name: str
    private_key: Path  # <name>.key: flower-supernode --auth-supernode-private-key
    public_key: Path  # <name>.pub: flwr supernode register


def make_tls_certificates(
    out_dir: Path, hosts: Sequence[str], *, days: int = 365, overwrite: bool = False
) -> TlsFiles:
    """Write a self-signed CA and a server certificate for ``hosts`` into ``out_dir``.

    Each host becomes a SubjectAlternativeName entry: IP addresses as IPAddress, anything
    else as DNSName. Only the hosts given are included; pass ``DEFAULT_HOSTS`` for a local
    deployment. Keys are EC P-256, which gRPC and Python's ``ssl`` (Flower's SuperLink and
    SuperNode) both accept and which keeps handshakes cheap.
    """
    names = _parse_hosts(hosts)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigError(f"days must be a positive whole number of days, got {days!r}.")
    out_dir = Path(out_dir)
    files = TlsFiles(out_dir / "ca.crt", out_dir / "ca.key", out_dir / "server.pem", out_dir / "server.key")
    _prepare(out_dir, [files.ca_cert, files.ca_key, files.server_cert, files.server_key], overwrite)

    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - _CLOCK_SKEW, now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key, start, end)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _server_certificate(server_key, names, ca_cert, ca_key, start, end)

    _write(files.ca_key, _pkcs8(ca_key), private=True, overwrite=overwrite)
    _write(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), private=False, overwrite=overwrite)
    _write(files.server_key, _pkcs8(server_key), private=True, overwrite=overwrite)
    _write(files.server_cert, server_cert.public_bytes(serialization.Encoding.PEM), private=False, overwrite=overwrite)
    log.info("certs: wrote CA and server certificate for %s to %s (%d days)", ", ".join(hosts), out_dir, days)
    return files


def make_supernode_keys(out_dir: Path, names: Sequence[str], *, overwrite: bool = False) -> list[NodeKeys]:
    """Write ``<name>.key`` and ``<name>.pub`` per SuperNode into ``out_dir``.

    The formats are the ones Flower 1.41 reads: ``flower-supernode`` loads the private key
    with ``load_ssh_private_key`` and requires an EC key; ``flwr supernode register`` loads
    the public key with ``load_ssh_public_key`` and requires a NIST curve. P-384 is the curve
    Flower itself generates (``flwr.supercore.primitives.asymmetric.generate_key_pairs``).
    """
    _check_node_names(names)
    out_dir = Path(out_dir)
    nodes = [NodeKeys(name, out_dir / f"{name}.key", out_dir / f"{name}.pub") for name in names]
    _prepare(out_dir, [path for node in nodes for path in (node.private_key, node.public_key)], overwrite)

    for node in nodes:
        key = ec.generate_private_key(ec.SECP384R1())
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        _write(node.private_key, private, private=True, overwrite=overwrite)
        # The trailing comment names the node, as ssh-keygen's user@host does.
        _write(node.public_key, public + f" {node.name}\n".encode(), private=False, overwrite=overwrite)
    log.info("certs: wrote %d SuperNode key pair(s) to %s", len(nodes), out_dir)
    return nodes


def _parse_hosts(hosts: Sequence[str]) -> list[x509.GeneralName]:
    if isinstance(hosts, str):
        raise ConfigError(f"hosts must be a list of host names or IPs, got the string {hosts!r}; pass [{hosts!r}].")
    if not hosts:
        raise ConfigError("hosts is empty; the server certificate needs at least one host name or IP address.")
    names: list[x509.GeneralName] = []
    for host in hosts:
        name = _parse_host(host)
        if name not in names:
            names.append(name)
    return names


def _parse_host(host: str) -> x509.GeneralName:
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(f"host {host!r} is empty; give a host name (e.g. 'localhost') or an IP address.")
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if not all(_DNS_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise ConfigError(
            f"host {host!r} is neither an IP address nor a DNS name; give the bare host "
            "without scheme, port or brackets (e.g. 'superlink.example.org', '10.0.0.5', '::1'). "
            "Write internationalised names in their ASCII (xn--) form."
        )
    return x509.DNSName(host.rstrip(".").lower())


def _check_node_names(names: Sequence[str]) -> None:
    if isinstance(names, str):
        raise ConfigError(f"names must be a list of SuperNode names, got the string {names!r}; pass [{names!r}].")
    if not names:
        raise ConfigError("names is empty; give one name per SuperNode (e.g. ['node-0', 'node-1']).")
    for name in names:
        if not isinstance(name, str) or not _NODE_NAME.match(name):
            raise ConfigError(
                f"SuperNode name {name!r} is not usable as a file name; use letters, digits, '-' "
                "and '_', starting with a letter or digit (e.g. 'node-0')."
            )
        if name in _RESERVED_NODE_NAMES:
            raise ConfigError(f"SuperNode name {name!r} would overwrite the TLS file {name}.key; pick another name.")
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ConfigError(f"SuperNode names must be unique; repeated: {', '.join(duplicates)}.")


def _prepare(out_dir: Path, paths: list[Path], overwrite: bool) -> None:
    """Create ``out_dir`` and refuse, before writing anything, if a file would be replaced."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} exists and is not a folder; choose another output folder.")
    if not overwrite:
        for path in paths:
            if path.exists() or path.is_symlink():
                raise ConfigError(
                    f"{path} already exists; refusing to replace it. Pass --overwrite to regenerate "
                    "(everything that trusted or used the old file must then get the new one)."
                )
    out_dir.mkdir(parents=True, exist_ok=True)


def _write(path: Path, data: bytes, *, private: bool, overwrite: bool) -> None:
    # O_EXCL closes the race between the existence check and the write; O_NOFOLLOW refuses a
    # link planted where a file will be replaced.
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600 if private else 0o644)
    except FileExistsError as err:
        raise ConfigError(f"{path} appeared while writing; refusing to replace it. Pass --overwrite.") from err
    except OSError as err:  # ELOOP: the path is a symbolic link
        raise ConfigError(f"{path}: cannot write it ({err.strerror}); remove the link or file there first.") from err
    with os.fdopen(fd, "wb") as file:
        if private:
            # An overwritten file keeps its old mode; tighten it, on the descriptor written, before the key.
            os.fchmod(file.fileno(), 0o600)
        file.write(data)


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ca_certificate(key: ec.EllipticCurvePrivateKey, start: dt.datetime, end: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedrec federation CA")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        _base(name, name, key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    names: list[x509.GeneralName],
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    start: dt.datetime,
    end: dt.datetime,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedrec superlink")])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        _base(subject, ca_cert.subject, key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _base(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, start: dt.datetime, end: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )
