"""``python -m rpc.trace render TRACE.jsonl -o call.html``: study tools for wire traces.

Only a command: ``rpc.trace`` is also the name of the function ``with rpc.trace():``, which an
imported module of this name would replace, so the code lives in ``rpc._trace`` (the renderers in
``rpc._trace.ladder``) and this module refuses to be imported.
"""

from __future__ import annotations

import sys

if __name__ != "__main__":
    raise ImportError(
        "rpc.trace is the command 'python -m rpc.trace'; the diagram functions are in "
        "rpc._trace.ladder (rpc.trace itself is the function rpc.trace())"
    )

from rpc._trace.render import main

sys.exit(main())
