"""The generator: a protoc ``CodeGeneratorRequest`` in, a ``CodeGeneratorResponse`` out.

One ``x_h2rpc.py`` per proto file to generate (``rpc.protoc_gen`` describes what is in it). The
output is laid out as ``ruff format`` lays it out (a construct that fits in 88 columns stays on one
line; one that does not has one item per line and a trailing comma), so that checking the
generated files with ruff, the formatter included (at its default line length or a longer one),
and ``mypy --strict`` finds nothing.
"""

from __future__ import annotations

import inspect
import keyword
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from .names import (
    module_alias,
    module_path,
    output_file,
    python_name,
    sorted_for_all,
)

#: ruff's and black's default line length: code laid out for it is laid out for longer ones too.
LINE_LENGTH = 88
INDENT = "    "
UNIMPLEMENTED = 'raise rpc.RpcError(rpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")'

# Field numbers of the descriptor protos, for the paths of SourceCodeInfo locations.
_FILE_SERVICE = 6  # FileDescriptorProto.service
_SERVICE_METHOD = 2  # ServiceDescriptorProto.method

#: The four call kinds: (request streaming, response streaming) -> name.
_KINDS = {
    (False, False): "unary_unary",
    (False, True): "unary_stream",
    (True, False): "stream_unary",
    (True, True): "stream_stream",
}


class GeneratorError(Exception):
    """A problem in the request that protoc reports to the user (the response's ``error``)."""


@dataclass(frozen=True)
class Options:
    """The plugin's options (``--h2rpc_opt=a,b`` or ``--h2rpc_out=a,b:DIR``).

    ``relative_imports``: import the ``_pb2`` modules of the files compiled in the same run
    relatively (``from . import x_pb2``), as code inside a package needs; other ``_pb2`` modules
    (the well-known types', dependencies compiled elsewhere) are imported absolutely.
    """

    relative_imports: bool = False

    @classmethod
    def parse(cls, parameter: str) -> Options:
        relative_imports = False
        for item in (part.strip() for part in parameter.split(",")):
            if not item:
                continue
            if item == "relative_imports":
                relative_imports = True
            else:
                raise GeneratorError(f"unknown option {item!r} (known: relative_imports)")
        return cls(relative_imports=relative_imports)


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """The response to ``request``: one ``_h2rpc.py`` file per file to generate, or an error."""
    response = plugin_pb2.CodeGeneratorResponse()
    response.supported_features = (
        plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
        | plugin_pb2.CodeGeneratorResponse.FEATURE_SUPPORTS_EDITIONS
    )
    # Only services, methods and message names matter here: no edition changes them.
    response.minimum_edition = descriptor_pb2.EDITION_PROTO2
    response.maximum_edition = descriptor_pb2.EDITION_2023
    try:
        options = Options.parse(request.parameter)
        files = {proto.name: proto for proto in request.proto_file}
        messages = MessageIndex(request.proto_file)
        generated = frozenset(request.file_to_generate)
        for name in request.file_to_generate:
            content = FileGenerator(files[name], messages, options, generated).render()
            response.file.add(name=output_file(name), content=content)
    except GeneratorError as exc:
        del response.file[:]
        response.error = str(exc)
    return response


class MessageIndex:
    """Where each message type is defined: its file and its names from the top level down."""

    def __init__(self, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> None:
        self._where: dict[str, tuple[str, tuple[str, ...]]] = {}
        for proto in files:
            prefix = f".{proto.package}" if proto.package else ""
            for message in proto.message_type:
                self._add(proto.name, prefix, (), message)

    def _add(
        self,
        file_name: str,
        prefix: str,
        outer: tuple[str, ...],
        message: descriptor_pb2.DescriptorProto,
    ) -> None:
        names = (*outer, message.name)
        self._where[prefix + "." + ".".join(names)] = (file_name, names)
        for nested in message.nested_type:
            self._add(file_name, prefix, names, nested)

    def find(self, type_name: str) -> tuple[str, tuple[str, ...]]:
        """(file name, names) of a fully qualified type name such as ``.pkg.Outer.Inner``."""
        try:
            return self._where[type_name]
        except KeyError:
            raise GeneratorError(f"message type {type_name} is not in the request") from None


@dataclass(frozen=True)
class _Import:
    """``import name as alias`` (``source`` empty), or ``from source import name as alias``."""

    alias: str
    source: str
    name: str


@dataclass(frozen=True)
class _Message:
    """How the generated code names a message class: at run time, and in annotations."""

    expression: str
    annotation: str


@dataclass(frozen=True)
class _Method:
    name: str  # as in the proto (the wire path, the handlers' keys)
    attribute: str  # the Python name (a keyword gets a trailing underscore)
    kind: str  # unary_unary, unary_stream, stream_unary, stream_stream
    request: _Message
    response: _Message
    doc: tuple[str, ...]

    @property
    def request_streaming(self) -> bool:
        return self.kind.startswith("stream_")

    @property
    def response_streaming(self) -> bool:
        return self.kind.endswith("_stream")


@dataclass(frozen=True)
class _Service:
    name: str
    full_name: str
    methods: tuple[_Method, ...]
    doc: tuple[str, ...]

    @property
    def stub(self) -> str:
        return f"{self.name}Stub"

    @property
    def blocking_stub(self) -> str:
        return f"{self.name}BlockingStub"

    @property
    def servicer(self) -> str:
        return f"{self.name}Servicer"

    @property
    def blocking_servicer(self) -> str:
        return f"{self.name}BlockingServicer"

    @property
    def add_function(self) -> str:
        return f"add_{self.name}Servicer_to_server"

    @property
    def names(self) -> tuple[str, ...]:
        return (
            self.stub,
            self.blocking_stub,
            self.servicer,
            self.blocking_servicer,
            self.add_function,
        )


class FileGenerator:
    """The ``_h2rpc.py`` module of one proto file."""

    def __init__(
        self,
        proto: descriptor_pb2.FileDescriptorProto,
        messages: MessageIndex,
        options: Options,
        generated: frozenset[str],
    ) -> None:
        self._proto = proto
        self._messages = messages
        self._options = options
        self._generated = generated
        self._comments = {
            tuple(location.path): location for location in proto.source_code_info.location
        }
        #: proto file name -> how its _pb2 module is imported
        self._imports = self._plan_imports()
        #: getattr expression -> module-level name, for classes named after Python keywords.
        self._keyword_messages: dict[str, str] = {}
        self._services = [self._service(index) for index in range(len(proto.service))]
        taken: dict[str, str] = {}
        for service in self._services:
            for name in service.names:
                if name in taken:
                    raise GeneratorError(
                        f"{proto.name}: services {taken[name]} and {service.full_name} would both "
                        f"generate {name}"
                    )
                taken[name] = service.full_name

    # ------------------------------------------------------------------ the model

    def _service(self, index: int) -> _Service:
        service = self._proto.service[index]
        package = self._proto.package
        full_name = f"{package}.{service.name}" if package else service.name
        methods = []
        for method_index, method in enumerate(service.method):
            kind = _KINDS[(method.client_streaming, method.server_streaming)]
            methods.append(
                _Method(
                    name=method.name,
                    attribute=python_name(method.name),
                    kind=kind,
                    request=self._message(method.input_type),
                    response=self._message(method.output_type),
                    doc=self._doc((_FILE_SERVICE, index, _SERVICE_METHOD, method_index)),
                )
            )
        return _Service(service.name, full_name, tuple(methods), self._doc((_FILE_SERVICE, index)))

    def _plan_imports(self) -> dict[str, _Import]:
        """The ``_pb2`` modules of the messages the RPCs use, each under its own name
        (``x_pb2``), or under grpcio's alias for it (``a_dot_x__pb2``) where two share one."""
        files: list[str] = []
        for service in self._proto.service:
            for method in service.method:
                for type_name in (method.input_type, method.output_type):
                    file_name = self._messages.find(type_name)[0]
                    if file_name not in files:
                        files.append(file_name)
        modules = {file_name: module_path(file_name) + "_pb2" for file_name in files}
        leaves = Counter(module.rpartition(".")[2] for module in modules.values())
        imports = {}
        for file_name, module in modules.items():
            package, _, leaf = module.rpartition(".")
            alias = leaf if leaves[leaf] == 1 else module_alias(module)
            if self._options.relative_imports and file_name in self._generated:
                here = module_path(self._proto.name).split(".")[:-1]
                there = package.split(".") if package else []
                common = 0
                while common < min(len(here), len(there)) and here[common] == there[common]:
                    common += 1
                source = "." * (len(here) - common + 1) + ".".join(there[common:])
                imports[file_name] = _Import(alias, source, leaf)
            elif package:
                imports[file_name] = _Import(alias, package, leaf)
            else:
                imports[file_name] = _Import(alias, "", module)
        return imports

    def _message(self, type_name: str) -> _Message:
        file_name, names = self._messages.find(type_name)
        expression = self._imports[file_name].alias
        if not any(keyword.iskeyword(name) for name in names):
            expression = ".".join((expression, *names))
            return _Message(expression, expression)
        # Names only getattr reaches (protobuf's own .pyi cannot name them either): a module-level
        # name for the class, typed Any.
        for name in names:
            if keyword.iskeyword(name):
                expression = f'getattr({expression}, "{name}")'
            else:
                expression = f"{expression}.{name}"
        binding = self._keyword_messages.get(expression)
        if binding is None:
            binding = "_" + "_".join(names)
            while binding in self._keyword_messages.values():
                binding += "_"
            self._keyword_messages[expression] = binding
        return _Message(binding, "typing.Any")

    def _doc(self, path: tuple[int, ...]) -> tuple[str, ...]:
        """The lines of the comments of the element at ``path`` (leading, then trailing)."""
        location = self._comments.get(path)
        if location is None:
            return ()
        lines: list[str] = []
        for comment in (location.leading_comments, location.trailing_comments):
            cleaned = _comment_lines(comment)
            if cleaned:
                lines += ["", *cleaned] if lines else cleaned
        return tuple(lines)

    # ------------------------------------------------------------------ the module

    def render(self) -> str:
        body: list[list[str]] = []  # top-level blocks, two blank lines apart
        for service in self._services:
            body.append(self._stub(service, blocking=False))
            body.append(self._stub(service, blocking=True))
            body.append(self._servicer(service, blocking=False))
            body.append(self._servicer(service, blocking=True))
            body.extend(self._add_function(service))
        imports = self._import_lines()
        lines = [
            "# Generated by protoc-gen-h2rpc. DO NOT EDIT!",
            f"# source: {self._proto.name}",
            "# isort: skip_file",  # the generator orders the imports (sections vary by project)
            *_docstring("", self._module_doc()),
            "",
            "from __future__ import annotations",
            "",
            *imports,
            *([""] if imports else []),
            *self._keyword_message_lines(),
            *_wrapped_list(
                "__all__", sorted_for_all(n for s in self._services for n in s.names), ""
            ),
        ]
        for block in body:
            lines += ["", "", *block]
        return "\n".join(lines) + "\n"

    def _module_doc(self) -> str:
        name = self._proto.name
        if not self._services:
            return f"h2rpc code of {name}, which defines no services."
        services = ", ".join(service.full_name for service in self._services)
        return (
            f"h2rpc stubs and servicers of {name}: {services}.\n\n"
            "For each service S: SStub (async, on an rpc.Channel) and SBlockingStub (on an "
            "rpc.sync.Channel), one typed attribute per RPC; the servicer base classes SServicer "
            "(async def methods) and SBlockingServicer (def methods), whose methods answer "
            "UNIMPLEMENTED until overridden; add_SServicer_to_server(servicer, server)."
        )

    def _import_lines(self) -> list[str]:
        """The import blocks, as isort orders them: the standard library; rpc and protobuf's
        modules; the other ``_pb2`` modules; relative imports."""
        methods = [method for service in self._services for method in service.methods]
        iterators = set()
        for method in methods:
            if method.request_streaming:
                iterators |= {"AsyncIterator", "Iterator"}
            if method.response_streaming:
                iterators |= {"AsyncIterator", "Iterable"}
        standard = [_Import(name, "collections.abc", name) for name in iterators]
        libraries = []
        if self._services:
            standard.append(_Import("typing", "", "typing"))
            libraries.append(_Import("rpc", "", "rpc"))
        others, relative = [], []
        for file_name, imported in self._imports.items():
            if file_name.startswith("google/protobuf/"):
                libraries.append(imported)
            elif imported.source.startswith("."):
                relative.append(imported)
            else:
                others.append(imported)
        lines: list[str] = []
        for block in (standard, libraries, others, relative):
            if block:
                lines += [""] if lines else []
                lines += _import_block(block)
        return lines

    def _keyword_message_lines(self) -> list[str]:
        if not self._keyword_messages:
            return []
        return [
            "# Message classes named after Python keywords: only getattr reaches them (typed Any).",
            *(f"{name} = {expression}" for expression, name in self._keyword_messages.items()),
            "",
        ]

    # ------------------------------------------------------------------ per service

    def _stub(self, service: _Service, *, blocking: bool) -> list[str]:
        if blocking:
            name, channel, where = service.blocking_stub, "rpc.sync.Channel", "rpc.sync"
            summary = f"The blocking client of ``{service.full_name}``, on an ``rpc.sync.Channel``."
        else:
            name, channel, where = service.stub, "rpc.Channel", "rpc"
            summary = f"The async client of ``{service.full_name}``, on an ``rpc.Channel``."
        lines = [f"class {name}:", *_docstring(INDENT, summary, service.doc)]
        for method in service.methods:
            multi_callable = f"{where}.{_camel(method.kind)}MultiCallable"
            lines.append("")
            lines += _wrapped(
                f"{INDENT}{method.attribute}: {multi_callable}[",
                [method.request.annotation, method.response.annotation],
                "]",
                INDENT,
            )
            if method.doc:
                lines += _docstring(INDENT, "", method.doc)
        lines += ["", f"{INDENT}def __init__(self, channel: {channel}) -> None:"]
        body = INDENT * 2
        if not service.methods:
            lines.append(f'{body}"""{service.full_name} has no methods."""')
        for method in service.methods:
            lines += _wrapped(
                f"{body}self.{method.attribute} = channel.{method.kind}(",
                [
                    f'"/{service.full_name}/{method.name}"',
                    f"request_serializer={method.request.expression}.SerializeToString",
                    f"response_deserializer={method.response.expression}.FromString",
                ],
                ")",
                body,
                explode=True,
            )
        return lines

    def _servicer(self, service: _Service, *, blocking: bool) -> list[str]:
        if blocking:
            name, context = service.blocking_servicer, "rpc.sync.ServicerContext"
            summary = (
                f"Base class of the blocking servicers of ``{service.full_name}`` (``def`` "
                "methods, for ``rpc.sync.Server`` or ``rpc.Server``)."
            )
        else:
            name, context = service.servicer, "rpc.ServicerContext"
            summary = (
                f"Base class of the async servicers of ``{service.full_name}`` (``async def`` "
                "methods, for ``rpc.Server``)."
            )
        summary += " Methods not overridden answer UNIMPLEMENTED."
        lines = [f"class {name}:", *_docstring(INDENT, summary, service.doc)]
        iterator = "Iterator" if blocking else "AsyncIterator"
        body = INDENT * 2
        for method in service.methods:
            if method.request_streaming:
                request = f"request_iterator: {iterator}[{method.request.annotation}]"
            else:
                request = f"request: {method.request.annotation}"
            response = method.response.annotation
            if method.response_streaming:
                container = "Iterable" if blocking else "AsyncIterator"
                response = f"{container}[{response}]"
            lines.append("")
            lines += _wrapped(
                f"{INDENT}{'def' if blocking else 'async def'} {method.attribute}(",
                ["self", request, f"context: {context}"],
                f") -> {response}:",
                INDENT,
            )
            if method.doc:
                lines += _docstring(body, "", method.doc)
            if method.response_streaming and not blocking:
                lines += [
                    f"{body}# The yield (never reached) makes this an async generator, as "
                    "overrides are.",
                    f"{body}if typing.TYPE_CHECKING:",
                    f"{body}{INDENT}yield {method.response.expression}()",
                ]
            lines.append(body + UNIMPLEMENTED)
        return lines

    def _add_function(self, service: _Service) -> list[list[str]]:
        """The overloads (an async servicer needs ``rpc.Server``) and the function."""
        name = service.add_function
        either = "rpc.Server | rpc.sync.Server"
        overloads = [
            [
                "@typing.overload",
                *_wrapped(
                    f"def {name}(",
                    [f"servicer: {servicer}", f"server: {server}"],
                    ") -> None: ...",
                    "",
                ),
            ]
            for servicer, server in (
                (service.servicer, "rpc.Server"),
                (service.blocking_servicer, either),
            )
        ]
        function = _wrapped(
            f"def {name}(",
            [
                f"servicer: {service.servicer} | {service.blocking_servicer}",
                f"server: {either}",
            ],
            ") -> None:",
            "",
        )
        doc = (
            f"Serve ``{service.full_name}`` on ``server`` with the methods of ``servicer``.\n\n"
            f"A ``{service.servicer}`` (``async def`` methods) needs an ``rpc.Server``; a "
            f"``{service.blocking_servicer}`` serves on ``rpc.sync.Server`` and on "
            "``rpc.Server`` (in its thread pool)."
        )
        function += _docstring(INDENT, doc)
        body = INDENT * 2
        handlers = []
        for method in service.methods:
            handlers += _wrapped(
                f'{body}{INDENT}"{method.name}": rpc.{method.kind}_rpc_method_handler(',
                [
                    f"servicer.{method.attribute}",
                    f"request_deserializer={method.request.expression}.FromString",
                    f"response_serializer={method.response.expression}.SerializeToString",
                ],
                "),",
                body + INDENT,
                explode=True,
            )
        function += [
            f"{INDENT}server.add_registered_method_handlers(",
            f'{body}"{service.full_name}",',
            *([f"{body}{{", *handlers, f"{body}}},"] if handlers else [f"{body}{{}},"]),
            f"{INDENT})",
        ]
        return [*overloads, function]


# ---------------------------------------------------------------------- layout


def _wrapped(
    head: str,
    items: Sequence[str],
    tail: str,
    indent: str,
    *,
    explode: bool = False,
    parenthesize: bool = False,
) -> list[str]:
    """``head`` + items + ``tail`` on one line if it fits (and not ``explode``), else one item
    per line with a trailing comma (ruff format's magic trailing comma keeps that), in
    parentheses added around them if ``parenthesize`` (an import statement)."""
    one_line = head + ", ".join(items) + tail
    if not explode and len(one_line) <= LINE_LENGTH:
        return [one_line]
    if parenthesize:
        head, tail = head + "(", ")" + tail
    inner = indent + INDENT
    lines = [head]
    for item in items:
        lines += _split_long(inner, item, ",")
    if tail.startswith(") -> ") and len(indent + tail) > LINE_LENGTH:
        lines += _split_long(indent, tail[:-1], tail[-1])  # the return annotation
    else:
        lines.append(indent + tail)
    return lines


def _split_long(indent: str, text: str, end: str) -> list[str]:
    """``text`` + ``end`` on a line, split as ruff format splits it when it does not fit: the
    item of a subscript (``X[`` / item / ``]``) or a union (``a: X`` / ``| Y``)."""
    line = indent + text + end
    if len(line) <= LINE_LENGTH:
        return [line]
    subscript = _SUBSCRIPT.fullmatch(text)
    if subscript:
        return [
            f"{indent}{subscript.group(1)}[",
            f"{indent}{INDENT}{subscript.group(2)}",
            f"{indent}]{end}",
        ]
    if " | " in text:
        first, second = text.split(" | ", 1)
        return [indent + first, f"{indent}| {second}{end}"]
    return [line]  # an item ruff cannot split either


#: ``prefix[item]`` with a single item (no comma, no nested subscript).
_SUBSCRIPT = re.compile(r"([^\[\]]+)\[([^\[\],]+)\]")


def _wrapped_list(name: str, items: Sequence[str], indent: str) -> list[str]:
    if not items:
        return [f"{indent}{name}: list[str] = []"]
    return _wrapped(f"{indent}{name} = [", [f'"{item}"' for item in items], "]", indent)


def _docstring(indent: str, prose: str, kept: Sequence[str] = ()) -> list[str]:
    """A docstring as ruff format writes it: ``prose`` (generated text, its paragraphs wrapped to
    the line length), then the ``kept`` lines (the proto's comments, as they are)."""
    lines: list[str] = []
    for paragraph in filter(None, prose.split("\n\n")):
        if lines:
            lines.append("")
        first_width = LINE_LENGTH - len(indent) - (0 if lines else 6)  # room for the quotes
        lines += _fill(paragraph, first_width, LINE_LENGTH - len(indent))
    if kept:
        lines += ["", *kept] if lines else kept
    lines = [_escape(line) for line in lines]
    if lines[0].startswith('"'):  # it would run into the opening quotes
        lines[0] = "\\" + lines[0]
    if lines[-1].endswith('"'):  # ... or into the closing ones
        lines[-1] += " "
    if len(lines) == 1:  # on one line, however long (ruff format joins it)
        return [f'{indent}"""{lines[0]}"""']
    return [
        f'{indent}"""{lines[0]}',
        *(f"{indent}{line}" if line else "" for line in lines[1:]),
        f'{indent}"""',
    ]


def _fill(paragraph: str, first_width: int, width: int) -> list[str]:
    """``paragraph`` wrapped at spaces: its first line to ``first_width``, the others to
    ``width`` (a longer word stays whole)."""
    lines: list[str] = []
    for word in paragraph.split():
        limit = first_width if len(lines) == 1 else width
        if lines and len(lines[-1]) + 1 + len(word) <= limit:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _escape(line: str) -> str:
    """A line of docstring text as source: backslashes and triple quotes escaped."""
    return line.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _comment_lines(comment: str) -> list[str]:
    """A proto comment as docstring lines: PEP 257's trimming (``inspect.cleandoc``: the common
    indentation of the lines after the first removed, tabs expanded), no trailing spaces, no
    blank lines at either end or two in a row."""
    text = inspect.cleandoc(comment.replace("\r\n", "\n").replace("\r", "\n"))
    lines: list[str] = []
    for line in (line.rstrip() for line in text.split("\n")):
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _camel(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split("_"))


def _import_block(imports: Sequence[_Import]) -> list[str]:
    """One block of import statements as isort writes them: ``import x`` lines first, then
    ``from`` lines (relative ones from the furthest), names of one module in one statement
    (but for those imported under another name), by module and name."""
    plain = sorted(
        (imported for imported in imports if not imported.source), key=lambda i: i.name.lower()
    )
    lines = [
        f"import {i.name}" if i.alias == i.name else f"import {i.name} as {i.alias}" for i in plain
    ]
    by_source: dict[str, list[_Import]] = {}
    for imported in imports:
        if imported.source:
            by_source.setdefault(imported.source, []).append(imported)

    def source_key(source: str) -> tuple[int, str]:
        dots = len(source) - len(source.lstrip("."))
        return -dots, source.lower()

    for source in sorted(by_source, key=source_key):
        names = sorted(by_source[source], key=lambda i: i.name)
        together = [i.name for i in names if i.alias == i.name]
        if together:
            lines += _wrapped(f"from {source} import ", together, "", "", parenthesize=True)
        lines += [f"from {source} import {i.name} as {i.alias}" for i in names if i.alias != i.name]
    return lines
