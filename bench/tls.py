"""A throwaway CA and a server certificate for the simulator, so that fal is reached over
HTTPS as in production (fal's endpoints are HTTPS only)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

# trustme's default, and what large HTTPS front ends usually present.
KEY_TYPE = trustme.KeyType.ECDSA


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate: SSL_CERT_FILE of the proxy, cafile of the harness
    cert: Path  # the server's certificate chain
    key: Path  # its private key

    def client_context(self) -> ssl.SSLContext:
        """What the harness's direct client verifies the simulator with (the proxy builds
        the same from SSL_CERT_FILE: ``ssl.create_default_context()`` in fal/http/dial.py)."""
        return ssl.create_default_context(cafile=str(self.ca))

    def describe(self) -> dict[str, str]:
        return {"ca": "throwaway (trustme)", "key_type": KEY_TYPE.name}


def throwaway_ca(folder: Path, host: str) -> TlsFiles:
    """A new CA, and a certificate it signs for ``host`` (an IP address gets an IP SAN)."""
    ca = trustme.CA(key_type=KEY_TYPE)
    leaf = ca.issue_cert(host, key_type=KEY_TYPE)
    files = TlsFiles(folder / "ca.pem", folder / "server-chain.pem", folder / "server-key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    with files.cert.open("wb") as chain:
        for blob in leaf.cert_chain_pems:
            chain.write(blob.bytes())
    leaf.private_key_pem.write_to_path(str(files.key))
    return files
