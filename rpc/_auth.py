"""Who the peer is: grpcio's ``auth_context()`` / ``peer_identities()`` from the TLS handshake.

grpcio exposes the authenticated identity as a dict of property name -> list of bytes values,
keyed as gRPC core names them (``transport_security_type``, ``x509_common_name``,
``x509_subject_alternative_name``, ...). Handlers written for grpcio authorize on these, so the
server builds the same dict from what the transport kept of the handshake (``TlsInfo``).
"""

from __future__ import annotations

import ssl
from typing import Any, Optional

from transport import TlsInfo

__all__ = ["auth_context", "peer_identities", "peer_identity_key"]

_INSECURE = {
    "transport_security_type": [b"insecure"],
    "security_level": [b"TSI_SECURITY_NONE"],
}

#: RFC 4514 short names of the attributes ``ssl`` spells out in full.
_SHORT_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


def auth_context(tls: Optional[TlsInfo]) -> dict[str, list[bytes]]:
    """The properties grpcio's ``ServicerContext.auth_context()`` has for this connection."""
    if tls is None:
        return {key: list(values) for key, values in _INSECURE.items()}
    context: dict[str, list[bytes]] = {"transport_security_type": [b"ssl"]}
    cert = tls.peer_certificate
    if cert is not None:
        subject = cert.get("subject", ())
        context["x509_subject"] = [_rfc4514(subject).encode()]
        common_names = [value for rdn in subject for key, value in rdn if key == "commonName"]
        if common_names:
            context["x509_common_name"] = [common_names[-1].encode()]
        if tls.peer_certificate_der is not None:
            pem = ssl.DER_cert_to_PEM_cert(tls.peer_certificate_der)
            context["x509_pem_cert"] = [pem.encode()]
        names = [(kind, value) for kind, value in cert.get("subjectAltName", ())]
        if names:
            context["x509_subject_alternative_name"] = [value.encode() for _, value in names]
        for kind, key in (("DNS", "peer_dns"), ("email", "peer_email"), ("URI", "peer_uri")):
            values = [value.encode() for k, value in names if k == kind]
            if values:
                context[key] = values
        ips = [value.encode() for k, value in names if k == "IP Address"]
        if ips:
            context["peer_ip"] = ips
    context["security_level"] = [b"TSI_PRIVACY_AND_INTEGRITY"]
    context["ssl_session_reused"] = [b"true" if tls.session_reused else b"false"]
    if tls.version is not None:
        context["ssl_tls_version"] = [tls.version.encode()]
    return context


def peer_identity_key(context: dict[str, list[bytes]]) -> Optional[str]:
    """The property that names the peer: its SANs if it has any, else its common name."""
    for key in ("x509_subject_alternative_name", "x509_common_name"):
        if key in context:
            return key
    return None


def peer_identities(context: dict[str, list[bytes]]) -> Optional[list[bytes]]:
    """The peer's identities (None when it is not authenticated), as grpcio gives them."""
    key = peer_identity_key(context)
    return None if key is None else list(context[key])


def _rfc4514(subject: Any) -> str:
    """A distinguished name as RFC 4514 writes it: the last RDN first, short attribute names."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(f"{_SHORT_NAMES.get(k, k)}={_escape(v)}" for k, v in rdn))
    return ",".join(rdns)


def _escape(value: str) -> str:
    escaped = "".join("\\" + c if c in ',+"\\<>;' else c for c in value)
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return escaped
