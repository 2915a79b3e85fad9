"""From a msgspec validation error to a problem located in the file: the one place that does it.

msgspec says what is wrong and where, the where as a JSON path at the end of its message
(``Expected `int`, got `str` - at `$.channels[...].port```). Our files are written by people in
TOML, so ``locate_problem`` turns that into a dotted key with the table names filled in where
msgspec writes ``[...]`` (``channels.email.port``), says which keys a table accepts and requires
when one is unknown or missing, and, for a value outside a field's ``constraint``, gives that
constraint's words instead of msgspec's. ``error_path`` reads the where alone (the HTTP edge names
a bad field of a request body by it). ``convert_part`` reads one part of a scenario through it
(the compiler's journeys and policy, the simulator's tables); ``touchpoint serve`` words the same
problems for its config file. ``convert_part`` also decodes the durations and times of day of
``actors.durations``: once, when the file is read.
"""

from __future__ import annotations

import re
from types import NoneType, UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import msgspec

from actors.durations import decode_time
from actors.errors import ScenarioError

T = TypeVar("T")

_AT = re.compile(r" - at `\$(.*)`$")
_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_UNKNOWN = re.compile(r"^Object contains unknown field `(.*)`$")
_MISSING = re.compile(r"^Object missing required field `(.*)`$")
_OUTSIDE = re.compile(r"^Expected `\w+` (of length )?[<>=]")  # a constraint failed, not the type
_WORDS = "problem"  # the key of a constraint's words in ``msgspec.Meta.extra``


def constraint(problem: str, **bounds: Any) -> msgspec.Meta:
    """A bound msgspec checks, said in ``problem``'s words when a value is outside it.

    Args:
        problem: what is wrong, for a person (``"expected a probability in [0, 1]"``);
            ``{value}`` stands for the value found.
        bounds: ``msgspec.Meta``'s ``ge``, ``gt``, ``le``, ``lt``, ``min_length``, ``max_length``.
    """
    return msgspec.Meta(**bounds, extra={_WORDS: problem})


class FieldProblem(msgspec.Struct, frozen=True):
    """A value that failed validation: where, and why.

    Attributes:
        where: the dotted key of the bad value, or of the table a key is unknown in or missing
            from (``send.candidates[1]``, ``channels.email``; "" for the value as a whole).
        reason: msgspec's words (``Expected `int`, got `str```), or the failed constraint's.
        unknown: a key the table at ``where`` does not accept.
        missing: a key the table at ``where`` requires and lacks.
        accepted: the keys the table at ``where`` accepts, as the file writes them.
        required: the keys it requires.
    """

    where: str
    reason: str
    unknown: str | None = None
    missing: str | None = None
    accepted: tuple[str, ...] = ()
    required: tuple[str, ...] = ()


def dotted(*names: str) -> str:
    """``channels.email.port`` from its parts, the empty ones left out."""
    return ".".join(name for name in names if name)


def convert_part(raw: object, spec: type[T], field: str = "") -> T:
    """One part of a scenario file as ``spec``, its durations and times of day in seconds.

    Args:
        raw: the part as parsed from TOML.
        spec: the msgspec type it must have.
        field: the part's own key in the file, prefixed to the located field ("" for none).

    Raises:
        ScenarioError: naming the field at fault; an unknown key with the ones the table accepts.
    """
    try:
        return msgspec.convert(raw, spec, dec_hook=decode_time)
    except msgspec.ValidationError as exc:
        problem = locate_problem(exc, raw, spec)
        where, message = problem.where, problem.reason
        if problem.unknown is not None:  # name the stray key itself, and the ones that would do
            where = dotted(where, problem.unknown)
            message = f"unknown field `{problem.unknown}`; expected one of {list(problem.accepted)}"
        raise ScenarioError(message, field=dotted(field, where) or None) from None


def locate_problem(exc: msgspec.ValidationError, raw: object, spec: Any) -> FieldProblem:
    """Where in ``raw`` converting it to ``spec`` failed, and why, in the words of the file.

    Args:
        exc: the error ``msgspec.convert(raw, spec)`` raised.
        raw: the value that was converted (to name the table keys msgspec shows as ``[...]``).
        spec: the type it was converted to.
    """
    reason = _AT.sub("", str(exc))
    where, kind, value = _walk(raw, spec, error_path(exc))
    unknown, missing = _UNKNOWN.match(reason), _MISSING.match(reason)
    if unknown or missing:
        struct = _member(kind, _is_struct)
        fields = msgspec.structs.fields(struct) if struct is not None else ()
        return FieldProblem(
            where, reason, unknown[1] if unknown else None, missing[1] if missing else None,
            accepted=tuple(f.encode_name for f in fields),
            required=tuple(f.encode_name for f in fields if f.required),
        )
    return FieldProblem(where, _in_constraint_words(reason, kind, value))


def error_path(exc: msgspec.MsgspecError) -> str:
    """The JSON path a msgspec error ends with, without its ``$`` (``.caps[0].per``,
    ``.batch[3].userId``); "" when it names none (the value as a whole)."""
    at = _AT.search(str(exc))
    return at.group(1) if at else ""


def _in_constraint_words(reason: str, kind: Any, value: object) -> str:
    """``reason`` said in the words of ``kind``'s ``constraint``, if it has one and it failed."""
    words = _constraint_words(kind)
    if words is None or not _OUTSIDE.match(reason):
        return reason
    if _bare(_options(kind)[0]) is float and type(value) is int:
        value = float(value)  # as msgspec decoded it
    return words.replace("{value}", str(value))


def _walk(raw: Any, kind: Any, path: str) -> tuple[str, Any, Any]:
    """Follow msgspec's ``path`` (``.caps[0].per``, ``.channels[...].open``) through ``raw`` and its
    type ``kind``: the dotted key with the failing table keys filled in, the type and the value
    found there (None where the type or the value cannot be followed)."""
    where = ""
    for name, index in _PART.findall(path):
        if name:
            kind = _field_type(_member(kind, _is_struct), name)
            raw, where = (raw.get(name) if isinstance(raw, dict) else None), dotted(where, name)
        elif index == "...":  # msgspec does not say which key of a table: find the one that fails
            mapping = _member(kind, _is_table)
            kind = get_args(mapping)[1] if mapping else None
            key = _failing_key(raw, kind)
            raw, where = (raw.get(key) if isinstance(raw, dict) else None), dotted(where, key)
        else:
            array = _member(kind, _is_array)
            kind = get_args(array)[0] if array else None
            item = int(index)
            raw = raw[item] if isinstance(raw, list) and item < len(raw) else None
            where = f"{where}[{index}]"
    return where, kind, raw


def _field_type(struct: Any, name: str) -> Any:
    """The type of the field ``struct`` writes as ``name`` in a file; None if there is none."""
    fields = msgspec.structs.fields(struct) if struct is not None else ()
    return next((field.type for field in fields if field.encode_name == name), None)


def _failing_key(raw: object, kind: Any) -> str:
    if isinstance(raw, dict) and kind is not None:
        for key, value in raw.items():
            try:
                msgspec.convert(value, kind, dec_hook=decode_time)
            except msgspec.ValidationError:
                return str(key)
    return "..."


def _options(kind: Any) -> list[Any]:
    """The members of a union (``None`` and UNSET left out), or ``kind`` itself; Annotated kept."""
    if isinstance(kind, UnionType) or get_origin(kind) is Union:
        return [t for t in get_args(kind) if t not in (NoneType, msgspec.UnsetType)]
    return [kind]


def _bare(kind: Any) -> Any:
    """``kind`` without its Annotated metadata."""
    return get_args(kind)[0] if get_origin(kind) is Annotated else kind


def _member(kind: Any, fits: Any) -> Any:
    """The member of ``kind`` (itself, or one of its union) whose bare type ``fits``; else None."""
    return next((_bare(t) for t in _options(_bare(kind)) if fits(_bare(t))), None)


def _is_struct(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, msgspec.Struct)


def _is_table(kind: Any) -> bool:
    return get_origin(kind) is dict


def _is_array(kind: Any) -> bool:
    return get_origin(kind) in (list, tuple)


def _constraint_words(kind: Any) -> str | None:
    """The words of the ``constraint`` on ``kind`` (or on a member of its union), if it has one."""
    for option in [kind, *_options(kind)]:
        if get_origin(option) is Annotated:
            for meta in option.__metadata__:
                words = (meta.extra or {}).get(_WORDS) if isinstance(meta, msgspec.Meta) else None
                if isinstance(words, str):
                    return words
    return None
