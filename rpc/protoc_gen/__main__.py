"""The protoc plugin's entry point: ``protoc-gen-h2rpc`` and ``python -m rpc.protoc_gen``.

protoc runs it with a serialized ``CodeGeneratorRequest`` on standard input and reads a
``CodeGeneratorResponse`` from standard output.
"""

from __future__ import annotations

import sys
from typing import Optional

from google.protobuf.compiler import plugin_pb2

from .generator import generate

USAGE = """\
protoc-gen-h2rpc: a protoc plugin that writes typed h2rpc stubs and servicers (x_h2rpc.py).

protoc runs it; it is not run by hand. For example:

    python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --h2rpc_out=. x.proto
    protoc --plugin=protoc-gen-h2rpc=$(which protoc-gen-h2rpc) \\
        --python_out=. --pyi_out=. --h2rpc_out=. x.proto

Options (--h2rpc_opt=NAME or --h2rpc_out=NAME:DIR): relative_imports
"""


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args or sys.stdin.isatty():
        print(USAGE, file=sys.stderr, end="")
        return 0 if args and args[0] in ("-h", "--help") else 2
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = generate(request)
    sys.stdout.buffer.write(response.SerializeToString())
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
