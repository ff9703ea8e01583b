"""What a TLS handshake established, kept for the application's authorization decisions.

gRPC servers let handlers see who the client is (grpcio's ``context.auth_context()``): the TLS
version and, under mutual TLS, the client certificate the handshake verified. Both drivers read
it once, right after the handshake, from their ``ssl.SSLObject`` / ``ssl.SSLSocket``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Optional, Union

__all__ = ["TlsInfo"]


@dataclass(frozen=True)
class TlsInfo:
    """The negotiated protocol and the peer's certificate (None when it sent none)."""

    alpn: Optional[str]
    version: Optional[str]
    session_reused: bool
    #: ``ssl``'s decoded form (``subject``, ``subjectAltName``, ...): filled in only for a
    #: certificate the handshake verified, which is what a server requesting client
    #: certificates (CERT_OPTIONAL / CERT_REQUIRED) gets.
    peer_certificate: Optional[dict[str, Any]]
    #: The same certificate in DER form.
    peer_certificate_der: Optional[bytes]

    @classmethod
    def of(cls, tls: Union[ssl.SSLObject, ssl.SSLSocket]) -> TlsInfo:
        decoded = tls.getpeercert()
        return cls(
            alpn=tls.selected_alpn_protocol(),
            version=tls.version(),
            session_reused=bool(tls.session_reused),
            peer_certificate=decoded or None,
            peer_certificate_der=tls.getpeercert(binary_form=True) if decoded else None,
        )
