"""``touchpoint serve``'s config file (``--config``): its keys, its tables, and its errors in words.

The top-level keys are defaults of serve's options of the same name: ``read_config_file`` is the
eager callback of ``--config`` and puts them in click's ``ctx.default_map`` before the other options
are resolved, so click layers each option as the command line, then its environment variable,
then the file, then its default. The ``[channels.NAME]`` and ``[outbox]`` tables, which no option
sets, are kept for serve in ``ctx.meta``. A bad file exits 2 with one line naming the file and
the key, before anything starts; located by ``actors.validation``, the problem is said in words
for people who do not read Python types (``write an integer from 0 to 65535 such as 8800``).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, TypeVar

import msgspec
import typer
from rich.markup import escape

from actors.validation import dotted, locate_problem
from engine.cli.output import errors

if TYPE_CHECKING:  # serve's modules load when it runs: other commands start faster without them
    from engine.delivery.outbox import OutboxSettings
    from engine.delivery.providers import ProviderSettings

_Settings = TypeVar("_Settings", bound=msgspec.Struct)

# The bounds of serve's settings, shared by its options and the keys of its config file.
LOWEST_PORT, HIGHEST_PORT = 0, 65535  # 0: any free port
MIN_SNAPSHOT_EVERY = 1.0  # seconds
Fsync = Literal["batch", "none"]

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class _ServeFile(msgspec.Struct, forbid_unknown_fields=True):
    """The top-level keys of a serve config file, UNSET where the file leaves one out.

    Attributes are named as serve's options (``write_key`` is the file's ``write_keys``): they are
    the options' defaults by name.
    """

    data: str | msgspec.UnsetType = msgspec.UNSET
    host: str | msgspec.UnsetType = msgspec.UNSET
    port: (
        Annotated[int, msgspec.Meta(ge=LOWEST_PORT, le=HIGHEST_PORT, examples=[8800])]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    write_key: Annotated[list[_NonEmpty], msgspec.Meta(examples=[["KEY"]])] | msgspec.UnsetType = (
        msgspec.field(default=msgspec.UNSET, name="write_keys")
    )
    admin_token: Annotated[_NonEmpty, msgspec.Meta(examples=["TOKEN"])] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    agent_token: Annotated[_NonEmpty, msgspec.Meta(examples=["TOKEN"])] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    snapshot_every: (
        Annotated[float, msgspec.Meta(ge=MIN_SNAPSHOT_EVERY, examples=[300])] | msgspec.UnsetType
    ) = msgspec.UNSET
    fsync: Fsync | msgspec.UnsetType = msgspec.UNSET
    archive: bool | msgspec.UnsetType = msgspec.UNSET


class ServeTables(NamedTuple):
    """The tables of a serve config file: each channel's provider settings, and the outbox's."""

    channels: dict[str, ProviderSettings]
    outbox: OutboxSettings


_TABLES = "touchpoint.serve.tables"  # their key in ctx.meta


def read_config_file(ctx: typer.Context, path: Path | None) -> Path | None:
    """``--config``'s callback (an eager option: it runs before the others are resolved).

    Sets the file's top-level keys as the defaults of the options of the same name, and keeps its
    tables for ``config_tables``; exits 2 with one line naming the file and the key on a bad file.
    """
    if path is None or ctx.resilient_parsing:  # (no file, or completion only)
        return path
    file, tables = _read(path)
    chosen = {name: value for name, value in msgspec.structs.asdict(file).items()
              if value is not msgspec.UNSET}
    ctx.default_map = {**(ctx.default_map or {}), **chosen}
    ctx.meta[_TABLES] = tables
    return path


def config_tables(ctx: typer.Context) -> ServeTables:
    """The tables ``read_config_file`` read; none (every channel mock, outbox defaults) without a file."""
    from engine.delivery.outbox import OutboxSettings

    tables = ctx.meta.get(_TABLES)
    return tables if isinstance(tables, ServeTables) else ServeTables({}, OutboxSettings())


_CONFIG_TABLES = ("channels", "outbox")


class _ConfigError(Exception):
    """A bad value in a serve config file; the message starts with its key."""


def _read(path: Path) -> tuple[_ServeFile, ServeTables]:
    """The top-level settings of a serve config file and its tables; exits 2 with one line naming
    the file and the key on a bad file."""
    from engine.delivery.outbox import OutboxSettings

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _config_failure(path, str(exc)) from None
    tables = {name: document.pop(name) for name in _CONFIG_TABLES if name in document}
    keys = [field.encode_name for field in msgspec.structs.fields(_ServeFile)]
    unknown = sorted(set(document) - set(keys))
    if unknown:  # every one of them, where msgspec would name the first
        raise _config_failure(path, f"unknown keys {unknown}; expected {sorted([*keys, *_CONFIG_TABLES])}")
    try:
        file = _convert(document, _ServeFile, "")
        channels = _channels(tables.get("channels", {}))
        outbox = _convert(tables.get("outbox", {}), OutboxSettings, "outbox")
    except _ConfigError as exc:
        raise _config_failure(path, str(exc)) from None
    return file, ServeTables(channels, outbox)


def _config_failure(path: Path, problem: str) -> typer.Exit:
    """Print ``config PATH: PROBLEM`` on stderr as one line; returns the exit (status 2) to raise."""
    errors.print(f"[bold red]config {escape(str(path))}[/]: {escape(problem)}",
                 highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _channels(table: object) -> dict[str, ProviderSettings]:
    """``[channels.NAME]`` tables as provider settings, by channel."""
    from engine.delivery.providers import PROVIDER_CHANNELS, HttpSettings, MockSettings, SmtpSettings

    providers: dict[str, type[ProviderSettings]] = {
        "http": HttpSettings, "mock": MockSettings, "smtp": SmtpSettings,
    }
    if not isinstance(table, dict):
        raise _ConfigError("channels: expected tables such as [channels.email]")
    channels: dict[str, ProviderSettings] = {}
    for channel, settings in table.items():
        where = f"channels.{channel}"
        if channel not in PROVIDER_CHANNELS:
            raise _ConfigError(f"{where}: unknown channel; expected one of {list(PROVIDER_CHANNELS)}")
        if not isinstance(settings, dict):
            raise _ConfigError(f"{where}: expected a table with provider = {' | '.join(providers)}")
        kind = settings.get("provider")
        if kind not in providers:
            what = "missing" if kind is None else f"unknown provider {kind!r}"
            raise _ConfigError(f"{where}.provider: {what}; expected one of {list(providers)}")
        channels[channel] = _convert(settings, providers[kind], where)
    return channels


def _convert(table: object, kind: type[_Settings], where: str) -> _Settings:
    """``table`` as a ``kind`` settings record; ``_ConfigError`` naming the key if it is not one.

    ``where`` is the table's name in the file (``channels.email``; "" for the top level). The
    message keeps msgspec's words (``Expected `int`, got `str```) and adds, for a bad value, what
    to write instead.
    """
    try:
        return msgspec.convert(table, kind)
    except msgspec.ValidationError as exc:
        problem = locate_problem(exc, table, kind)
        key = dotted(where, problem.where)
        if problem.missing is not None:
            required = list(problem.required)
            raise _ConfigError(f"{dotted(key, problem.missing)}: missing (required: {required})") from None
        if problem.unknown is not None:
            accepted = list(problem.accepted)
            raise _ConfigError(f"{dotted(key, problem.unknown)}: unknown key; expected one of {accepted}") \
                from None
        raise _ConfigError(f"{key}: {problem.reason}{_what_to_write(kind, problem.where)}") from None


def _what_to_write(kind: type[msgspec.Struct], where: str) -> str:
    """``; write an integer from 0 to 65535 such as 8800``: what the key at the head of ``where``
    (``port``, ``write_keys[1]``; "" for the table itself) takes; "" when it cannot be said in
    words."""
    info: Any = msgspec.inspect.type_info(kind)
    head = re.match(r"\w+", where)
    if head:
        info = next((field.type for field in info.fields if field.encode_name == head[0]), None)
    words = _in_words(info)
    return f"; write {words}" if words else ""


_NOUNS: dict[type[msgspec.inspect.Type], tuple[str, str]] = {  # singular, plural
    msgspec.inspect.IntType: ("an integer", "integers"),
    msgspec.inspect.FloatType: ("a number", "numbers"),
    msgspec.inspect.StrType: ("a string", "strings"),
    msgspec.inspect.BoolType: ("true or false", "booleans"),
    msgspec.inspect.StructType: ("a table", "tables"),
}


def _in_words(info: Any, plural: bool = False) -> str:
    """A value of the msgspec type ``info`` as a person would ask for it in TOML: ``an array of
    non-empty strings such as ["KEY"]``; "" for a type this does not know."""
    inspect = msgspec.inspect
    if isinstance(info, inspect.Metadata):
        words = _in_words(info.type, plural)
        examples = (info.extra_json_schema or {}).get("examples")
        return f"{words} such as {json.dumps(examples[0])}" if words and examples else words
    if isinstance(info, inspect.UnionType):  # TOML has no null: None stands for a key left out
        kinds = [t for t in info.types if not isinstance(t, inspect.NoneType)]
        return " or ".join(filter(None, (_in_words(t, plural) for t in kinds)))
    if isinstance(info, inspect.LiteralType):
        return " or ".join(json.dumps(value) for value in info.values)
    if isinstance(info, (inspect.ListType, inspect.DictType)):
        array = isinstance(info, inspect.ListType)
        items = _in_words(info.item_type if array else info.value_type, plural=True)
        container = "an array" if array else "a table"
        return f"{container} of {items}" if items else container
    nouns = _NOUNS.get(type(info))
    if nouns is None:
        return ""
    if isinstance(info, inspect.StrType) and info.min_length:  # msgspec's message says how long
        nouns = ("a non-empty string", "non-empty strings")
    return nouns[plural] + _limits(info)


def _limits(info: Any) -> str:
    """The bounds of a number, or a string's pattern, as words to follow its noun."""
    if isinstance(info, msgspec.inspect.StrType):
        return f" matching {info.pattern}" if info.pattern else ""
    if not isinstance(info, (msgspec.inspect.IntType, msgspec.inspect.FloatType)):
        return ""
    if info.ge is not None and info.le is not None:
        return f" from {_number(info.ge)} to {_number(info.le)}"
    bounds = ((">=", info.ge), (">", info.gt), ("<=", info.le), ("<", info.lt))
    said = [f"{sign} {_number(value)}" for sign, value in bounds if value is not None]
    return " " + " and ".join(said) if said else ""


def _number(value: float) -> str:
    """``1`` for 1.0, as a person writes it; ``0.5`` stays."""
    return str(int(value)) if float(value).is_integer() else str(value)
