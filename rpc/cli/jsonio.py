"""Messages in and out of the command line: JSON requests, JSON-lines or text responses.

Requests are JSON objects, one or many (JSON lines, or objects one after another as grpcurl
accepts them), read lazily so that a bidi call can answer each line typed on standard input.
Responses are printed as grpcurl prints them, field for field: protobuf's JSON mapping with
lowerCamelCase names, 64-bit integers as strings, enums by name, fields at their default value
left out (``--emit-defaults`` keeps them); one JSON object per line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO, Any, Optional

from google.protobuf import json_format, text_format
from google.protobuf.message import Message

__all__ = ["RequestError", "format_message", "json_objects", "parse_request", "read_requests"]


class RequestError(ValueError):
    """A request that is not JSON, or not a message of the method's request type."""


def json_objects(chunks: Iterable[str]) -> Iterator[Any]:
    """The JSON values in a text arriving in chunks (lines of a file or of standard input),
    each yielded as soon as it is complete; whitespace between them is skipped."""
    decoder = json.JSONDecoder()
    buffer = ""
    for chunk in chunks:
        buffer += chunk
        while True:
            buffer = buffer.lstrip()
            if not buffer:
                break
            try:
                value, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError:
                break  # incomplete (or bad: said at the end)
            yield value
            buffer = buffer[end:]
    buffer = buffer.strip()
    if buffer:
        try:
            decoder.raw_decode(buffer)
        except json.JSONDecodeError as exc:
            raise RequestError(f"the request data is not JSON: {exc}") from None


def parse_request(value: Any, message_class: Any, pool: Any = None) -> Message:
    """One JSON value as a message of ``message_class``."""
    message: Message = message_class()
    if not isinstance(value, dict):
        name = message.DESCRIPTOR.full_name
        raise RequestError(f"a {name} request must be a JSON object, not {json.dumps(value)}")
    try:
        json_format.ParseDict(value, message, descriptor_pool=pool)
    except json_format.ParseError as exc:
        raise RequestError(f"bad {message.DESCRIPTOR.full_name} request: {exc}") from None
    return message


def read_requests(
    data: Optional[str], stdin: IO[str], message_class: Any, pool: Any = None
) -> Iterator[Message]:
    """The requests of ``-d DATA``: JSON text, ``@FILE``, or ``@``/``@-`` for standard input."""
    chunks: Iterable[str]
    if data is None:
        return
    if data in ("@", "@-"):
        chunks = iter(stdin.readline, "")
    elif data.startswith("@"):
        try:
            with open(data[1:], encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise RequestError(f"cannot read {data[1:]}: {exc.strerror}") from None
        chunks = [text]
    else:
        chunks = [data]
    for value in json_objects(chunks):
        yield parse_request(value, message_class, pool)


def format_message(
    message: Message, format: str = "json", *, emit_defaults: bool = False, pool: Any = None
) -> str:
    """A response as one line of JSON (``format="json"``) or as protobuf text."""
    if format == "text":
        return text_format.MessageToString(message, descriptor_pool=pool).rstrip("\n")
    as_dict = json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=emit_defaults,
        descriptor_pool=pool,
    )
    return json.dumps(as_dict, ensure_ascii=False)
