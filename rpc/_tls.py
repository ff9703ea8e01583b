"""TLS contexts for gRPC: HTTP/2 over TLS 1.2+, negotiated with ALPN ``h2``.

gRPC over TLS is HTTP/2 selected by ALPN (RFC 9113 §3.2); a peer that does not negotiate ``h2`` is
not a gRPC peer, so both helpers offer only ``h2`` and the transport drops a connection that did not
agree on it. Certificates and keys come as PEM files (a path) or as PEM bytes, as grpcio takes them.

Every context a channel or server uses passes through ``require_alpn_h2``, which also honours
``SSLKEYLOGFILE``: the TLS secrets of each connection are appended to that file in the NSS key log
format, which Wireshark uses to decrypt a capture of the encrypted bytes (curl, browsers and
``ssl.create_default_context`` do the same). A context that already has a key log keeps it.
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
import tempfile
from typing import Optional, Union

log = logging.getLogger(__name__)

PemSource = Union[str, bytes, "os.PathLike[str]"]

ENV_KEYLOG = "SSLKEYLOGFILE"


def require_alpn_h2(context: ssl.SSLContext) -> ssl.SSLContext:
    """Make ``context`` offer ALPN ``h2`` (only) and at least TLS 1.2 (RFC 9113 §9.2); log its
    secrets to ``SSLKEYLOGFILE`` if that is set (``honour_keylog``)."""
    context.set_alpn_protocols(["h2"])
    if context.minimum_version < ssl.TLSVersion.TLSv1_2:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    return honour_keylog(context)


def honour_keylog(context: ssl.SSLContext) -> ssl.SSLContext:
    """Append ``context``'s TLS secrets to the file ``SSLKEYLOGFILE`` names, as the standard
    library's ``create_default_context`` does, unless the context has a key log already (the
    application's choice wins) or Python ignores the environment (``-E``). Read at every call:
    the variable is a debugging switch, set for the process being studied."""
    path = os.environ.get(ENV_KEYLOG) if not sys.flags.ignore_environment else None
    if not path:
        return context
    if not KEYLOG_SUPPORTED:
        log.warning("%s=%r: TLS secrets not logged: this ssl module cannot", ENV_KEYLOG, path)
        return context
    try:
        if context.keylog_filename is None:
            context.keylog_filename = path
    except OSError as exc:  # a file that cannot be opened: the connection works without it
        log.warning("%s=%r: TLS secrets not logged: %s", ENV_KEYLOG, path, exc)
    return context


#: CPython's ssl has key logs (3.8+, OpenSSL 1.1.1+); PyPy's does not (an assignment there
#: would only add an attribute that nothing reads).
KEYLOG_SUPPORTED = hasattr(ssl.SSLContext, "keylog_filename")


def _load_chain(context: ssl.SSLContext, certificate_chain: PemSource, key: PemSource) -> None:
    if isinstance(certificate_chain, bytes) or isinstance(key, bytes):
        # ssl only loads a chain from files: PEM bytes go through short-lived private files.
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for name, pem in (("chain.pem", certificate_chain), ("key.pem", key)):
                if isinstance(pem, bytes):
                    path = os.path.join(tmp, name)
                    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
                        f.write(pem)
                    paths.append(path)
                else:
                    paths.append(os.fspath(pem))
            context.load_cert_chain(paths[0], paths[1])
    else:
        context.load_cert_chain(os.fspath(certificate_chain), os.fspath(key))


def _load_roots(context: ssl.SSLContext, roots: PemSource) -> None:
    if isinstance(roots, bytes):
        context.load_verify_locations(cadata=roots.decode("ascii"))
    else:
        context.load_verify_locations(cafile=os.fspath(roots))


def ssl_server_context(
    certificate_chain: PemSource,
    private_key: PemSource,
    *,
    root_certificates: Optional[PemSource] = None,
    require_client_auth: bool = False,
) -> ssl.SSLContext:
    """A server context; with ``root_certificates`` and ``require_client_auth``: mutual TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load_chain(context, certificate_chain, private_key)
    if root_certificates is not None:
        _load_roots(context, root_certificates)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_auth else ssl.CERT_OPTIONAL
    elif require_client_auth:
        raise ValueError("require_client_auth needs root_certificates to verify clients with")
    return require_alpn_h2(context)


def ssl_channel_context(
    root_certificates: Optional[PemSource] = None,
    *,
    private_key: Optional[PemSource] = None,
    certificate_chain: Optional[PemSource] = None,
) -> ssl.SSLContext:
    """A client context: the system's roots unless ``root_certificates``; a client cert for mTLS."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if root_certificates is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _load_roots(context, root_certificates)
    if (private_key is None) != (certificate_chain is None):
        raise ValueError("a client certificate needs both certificate_chain and private_key")
    if certificate_chain is not None and private_key is not None:
        _load_chain(context, certificate_chain, private_key)
    return require_alpn_h2(context)
