"""TLS certificates and SuperNode keys: checked with cryptography's verifier, a real TLS
handshake, and the very functions Flower 1.41 uses to load node keys."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import socket
import ssl
import stat
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store
from flwr.cli.supernode.register import try_load_public_key
from flwr.supercore.primitives.asymmetric import public_key_to_bytes
from flwr.supernode.cli.flower_supernode import _try_setup_client_authentication

from fedrec.errors import ConfigError
from fedrec.federation.certs import DEFAULT_HOSTS, make_supernode_keys, make_tls_certificates

GREETING = b"hello over tls"


@pytest.fixture
def tls_files(tmp_path: Path):
    return make_tls_certificates(tmp_path / "certs", DEFAULT_HOSTS)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def server_verifier(ca_cert: Path, subject: x509.DNSName | x509.IPAddress):
    store = Store([load_cert(ca_cert)])
    return PolicyBuilder().store(store).time(dt.datetime.now(dt.timezone.utc)).build_server_verifier(subject)


@contextmanager
def tls_server(cert: Path, key: Path):
    """Serve one TLS connection on 127.0.0.1 (sending GREETING) and yield the port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)  # never hang the suite if the client does not connect

    def serve_one() -> None:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            try:
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(GREETING)
            except (ssl.SSLError, OSError):
                pass  # the client refused our certificate: what some tests expect

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(timeout=10)


def receive_over_tls(port: int, ca_cert: Path, server_hostname: str) -> bytes:
    """Connect as a SuperNode does (an SSLContext trusting only the given CA) and read."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.load_verify_locations(cadata=ca_cert.read_text(encoding="ascii"))
    context.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13 on
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            return tls.recv(len(GREETING))


# --- the server certificate ---------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ],
)
def test_server_certificate_verifies_against_the_ca_for_every_default_host(tls_files, subject):
    verifier = server_verifier(tls_files.ca_cert, subject)

    chain = verifier.verify(load_cert(tls_files.server_cert), [])

    assert chain[-1] == load_cert(tls_files.ca_cert)


def test_server_certificate_does_not_verify_for_a_host_it_does_not_name(tls_files):
    verifier = server_verifier(tls_files.ca_cert, x509.DNSName("elsewhere.example.org"))

    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(load_cert(tls_files.server_cert), [])


def test_each_host_is_a_san_entry_of_its_own_type(tmp_path):
    files = make_tls_certificates(tmp_path, ["superlink.example.org", "10.0.0.5", "fd00::7"])

    san = load_cert(files.server_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    assert san.get_values_for_type(x509.DNSName) == ["superlink.example.org"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("fd00::7"),
    ]


def test_only_the_hosts_given_are_in_the_certificate(tmp_path):
    files = make_tls_certificates(tmp_path, ["superlink.example.org"])

    san = load_cert(files.server_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    assert list(san) == [x509.DNSName("superlink.example.org")]


def test_a_host_given_twice_is_named_once(tmp_path):
    files = make_tls_certificates(tmp_path, ["localhost", "127.0.0.1", "localhost", "127.0.0.1"])

    san = load_cert(files.server_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    assert len(list(san)) == 2


def test_ca_may_sign_certificates_and_the_server_certificate_may_not(tls_files):
    ca, server = load_cert(tls_files.ca_cert), load_cert(tls_files.server_cert)

    ca_constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    ca_usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    server_constraints = server.extensions.get_extension_for_class(x509.BasicConstraints).value

    assert ca_constraints.ca is True
    assert ca_usage.key_cert_sign is True
    assert server_constraints.ca is False
    assert ca.subject == ca.issuer == server.issuer


def test_server_certificate_is_for_server_authentication(tls_files):
    server = load_cert(tls_files.server_cert)

    usages = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value

    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_certificates_last_the_requested_number_of_days(tmp_path):
    files = make_tls_certificates(tmp_path, ["localhost"], days=30)

    server = load_cert(files.server_cert)

    lifetime = server.not_valid_after_utc - server.not_valid_before_utc
    assert dt.timedelta(days=30) <= lifetime <= dt.timedelta(days=30, hours=1)


# --- key files ----------------------------------------------------------------------------


def test_tls_private_keys_are_readable_only_by_their_owner(tls_files):
    assert mode_of(tls_files.ca_key) == 0o600
    assert mode_of(tls_files.server_key) == 0o600


def test_tls_private_keys_are_unencrypted_pkcs8_p256(tls_files):
    for path in (tls_files.ca_key, tls_files.server_key):
        text = path.read_bytes()

        key = serialization.load_pem_private_key(text, password=None)

        assert text.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8, not SEC1
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)


def test_files_have_the_names_flower_documents(tls_files, tmp_path):
    names = sorted(path.name for path in (tmp_path / "certs").iterdir())

    assert names == ["ca.crt", "ca.key", "server.key", "server.pem"]


# --- overwriting --------------------------------------------------------------------------


def test_existing_certificates_are_not_replaced_without_overwrite(tls_files, tmp_path):
    ca_before = tls_files.ca_cert.read_bytes()

    with pytest.raises(ConfigError, match=r"ca\.crt.*--overwrite"):
        make_tls_certificates(tmp_path / "certs", DEFAULT_HOSTS)

    assert tls_files.ca_cert.read_bytes() == ca_before


def test_one_existing_file_stops_the_whole_set_before_anything_is_written(tmp_path):
    (tmp_path / "server.key").write_text("someone else's key", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"server\.key"):
        make_tls_certificates(tmp_path, ["localhost"])

    assert sorted(path.name for path in tmp_path.iterdir()) == ["server.key"]


def test_overwrite_issues_a_new_ca_and_tightens_loose_key_permissions(tls_files, tmp_path):
    ca_before = tls_files.ca_cert.read_bytes()
    tls_files.ca_key.chmod(0o644)

    files = make_tls_certificates(tmp_path / "certs", DEFAULT_HOSTS, overwrite=True)

    assert files.ca_cert.read_bytes() != ca_before
    assert mode_of(files.ca_key) == 0o600
    server_verifier(files.ca_cert, x509.DNSName("localhost")).verify(load_cert(files.server_cert), [])


def test_overwrite_refuses_a_link_planted_where_a_key_goes(tls_files, tmp_path):
    """A symbolic link at a key's path would send the new private key wherever it points; the
    key file is opened without following links, and its mode set on the descriptor written."""
    elsewhere = tmp_path / "elsewhere.key"
    elsewhere.write_bytes(b"")
    tls_files.ca_key.unlink()
    tls_files.ca_key.symlink_to(elsewhere)

    with pytest.raises(ConfigError, match="ca.key: cannot write it"):
        make_tls_certificates(tls_files.ca_key.parent, DEFAULT_HOSTS, overwrite=True)

    assert elsewhere.read_bytes() == b""


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hosts",
    [[], [""], ["  "], "localhost", ["localhost:9092"], ["https://superlink.example.org"], ["[::1]"], ["bad_host"]],
)
def test_bad_hosts_are_refused_and_nothing_is_written(tmp_path, hosts):
    with pytest.raises(ConfigError, match="host"):
        make_tls_certificates(tmp_path / "certs", hosts)

    assert not (tmp_path / "certs").exists()


@pytest.mark.parametrize("days", [0, -1, 1.5, True])
def test_a_lifetime_that_is_not_a_positive_number_of_days_is_refused(tmp_path, days):
    with pytest.raises(ConfigError, match="days"):
        make_tls_certificates(tmp_path, ["localhost"], days=days)


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "certs").write_text("", encoding="utf-8")

    with pytest.raises(ConfigError, match="not a folder"):
        make_tls_certificates(tmp_path / "certs", ["localhost"])


# --- a real TLS handshake -----------------------------------------------------------------


@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1"])
def test_a_client_trusting_only_the_ca_completes_a_tls_handshake(tls_files, server_hostname):
    with tls_server(tls_files.server_cert, tls_files.server_key) as port:
        received = receive_over_tls(port, tls_files.ca_cert, server_hostname)

    assert received == GREETING


def test_a_client_trusting_a_different_ca_refuses_the_server(tls_files, tmp_path):
    other = make_tls_certificates(tmp_path / "other", DEFAULT_HOSTS)

    with tls_server(tls_files.server_cert, tls_files.server_key) as port:
        with pytest.raises(ssl.SSLCertVerificationError):
            receive_over_tls(port, other.ca_cert, "localhost")


def test_a_client_expecting_a_host_not_in_the_certificate_refuses_the_server(tls_files):
    with tls_server(tls_files.server_cert, tls_files.server_key) as port:
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            receive_over_tls(port, tls_files.ca_cert, "superlink.example.org")


# --- SuperNode authentication keys --------------------------------------------------------


def test_flower_loads_each_supernode_key_pair_as_one_matching_pair(tmp_path):
    nodes = make_supernode_keys(tmp_path, ["node-0", "node-1"])

    for node in nodes:
        # What `flower-supernode --auth-supernode-private-key` and `flwr supernode register` run.
        private_key, derived_public_key = _try_setup_client_authentication(
            argparse.Namespace(auth_supernode_private_key=str(node.private_key), auth_supernode_public_key=None)
        )
        registered_public_key = try_load_public_key(node.public_key)

        assert isinstance(private_key.curve, ec.SECP384R1)
        assert public_key_to_bytes(derived_public_key) == registered_public_key


def test_supernode_key_files_are_named_after_their_node(tmp_path):
    nodes = make_supernode_keys(tmp_path, ["node-0"])

    assert (nodes[0].name, nodes[0].private_key.name, nodes[0].public_key.name) == ("node-0", "node-0.key", "node-0.pub")
    assert nodes[0].public_key.read_text(encoding="ascii").startswith("ecdsa-sha2-nistp384 ")


def test_every_supernode_gets_its_own_key(tmp_path):
    nodes = make_supernode_keys(tmp_path, ["node-0", "node-1", "node-2"])

    public_keys = {node.public_key.read_text(encoding="ascii").split()[1] for node in nodes}

    assert len(public_keys) == 3


def test_supernode_private_keys_are_readable_only_by_their_owner(tmp_path):
    nodes = make_supernode_keys(tmp_path, ["node-0"])

    assert mode_of(nodes[0].private_key) == 0o600


def test_supernode_keys_are_not_replaced_without_overwrite(tmp_path):
    node = make_supernode_keys(tmp_path, ["node-0"])[0]
    before = node.public_key.read_bytes()

    with pytest.raises(ConfigError, match=r"node-0\.key.*--overwrite"):
        make_supernode_keys(tmp_path, ["node-0"])

    assert node.public_key.read_bytes() == before


def test_overwrite_gives_a_supernode_a_new_key(tmp_path):
    before = make_supernode_keys(tmp_path, ["node-0"])[0].public_key.read_bytes()

    node = make_supernode_keys(tmp_path, ["node-0"], overwrite=True)[0]

    assert node.public_key.read_bytes() != before


def test_supernode_keys_beside_the_tls_files_leave_them_alone(tls_files, tmp_path):
    ca_before = tls_files.ca_key.read_bytes()

    make_supernode_keys(tmp_path / "certs", ["node-0"])

    assert tls_files.ca_key.read_bytes() == ca_before


@pytest.mark.parametrize("names", [[], "node-0", [""], ["node/0"], [".hidden"], ["ca"], ["server"], ["a", "b", "a"]])
def test_bad_supernode_names_are_refused_and_nothing_is_written(tmp_path, names):
    with pytest.raises(ConfigError, match="name"):
        make_supernode_keys(tmp_path / "keys", names)

    assert not (tmp_path / "keys").exists()
