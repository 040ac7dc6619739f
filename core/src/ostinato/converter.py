"""The data converter: how inputs, outputs and event payloads become JSON text and back.

Encoding (``dumps``) is value-driven and always gives plain JSON:

* ``None``, ``bool``, ``int``, ``float`` (finite), ``str`` (valid Unicode: no lone surrogates
  such as ``os.fsdecode`` makes of undecodable bytes), ``list`` and ``dict`` with ``str`` keys
  are written as themselves;
* ``tuple``, ``set`` and ``frozenset`` become arrays (sets sorted when their items allow it);
* dataclass instances become objects of their fields; pydantic models use ``model_dump``;
* ``datetime``, ``date`` and ``time`` become ISO 8601 strings, ``UUID`` and ``Decimal`` strings,
  ``Enum`` members their value, ``bytes`` base64 text;
* any other type needs an encoder registered with ``JsonDataConverter(encoders=...)``,
  otherwise :class:`~ostinato.errors.SerializationError` names the type and where it was found.

Decoding (``loads``) is type-driven: without a type hint the plain JSON value comes back (so a
tuple arrives as a list and a dataclass as a dict); with one, the value is rebuilt as that type.
Activities, orchestrators and entities get their input decoded with the annotation of their
input parameter, and ``yield ctx.call_activity(fn, ...)`` decodes with ``fn``'s return annotation.
So annotate to get your types back::

    @app.activity
    def recommend(ctx, query: tuple[str, int]) -> list[Course]: ...
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import json
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ostinato.errors import SerializationError
from ostinato.jsontext import compact_encoder, parse

_TOO_DEEP = "The payload is nested too deeply (lists or dicts inside each other) to serialize"

#: Compact JSON text of plain JSON data; NaN and infinities raise ``ValueError``.
_ENCODE = compact_encoder(allow_nan=False)


class DataConverter(Protocol):
    """Turns values into payload text and back. ``None`` means "no payload"."""

    def dumps(self, value: Any) -> str | None: ...

    def loads(self, data: str | None, type_hint: Any = None) -> Any: ...


class JsonDataConverter:
    """The default converter: JSON text, rules in this module's docstring."""

    def __init__(
        self,
        *,
        encoders: Mapping[type, Callable[[Any], Any]] | None = None,
        decoders: Mapping[type, Callable[[Any], Any]] | None = None,
    ) -> None:
        self._encoders = dict(encoders or {})
        self._decoders = dict(decoders or {})

    # -- encoding -------------------------------------------------------------------------
    def dumps(self, value: Any) -> str | None:
        """Encode ``value`` as JSON text; ``None`` gives ``None``."""
        if value is None:
            return None
        try:
            # A str (the commonest payload) is JSON data as it is.
            plain = value if type(value) is str else self.to_json_value(value, "$")
            text = _ENCODE(plain)
        except ValueError as exc:  # NaN / infinity
            raise SerializationError(f"Cannot serialize payload: {exc}") from None
        except RecursionError:
            raise SerializationError(_TOO_DEEP) from None
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise SerializationError(_surrogate_message(plain, exc)) from None
        return text

    def to_json_value(self, value: Any, path: str = "$") -> Any:
        """Turn ``value`` into plain JSON data (dicts, lists, strings, numbers, bools, None)."""
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise SerializationError(
                    f"Cannot serialize {value!r} at {path}: not a finite number"
                )
            return value
        for cls, encoder in self._encoders.items():
            if isinstance(value, cls):
                return self.to_json_value(encoder(value), path)
        if isinstance(value, enum.Enum):
            return self.to_json_value(value.value, path)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise SerializationError(
                        f"Cannot serialize dict key {key!r} at {path}: JSON object keys must be str"
                    )
                out[key] = self.to_json_value(item, f"{path}.{key}")
            return out
        if isinstance(value, (list, tuple)):
            return [self.to_json_value(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, (set, frozenset)):
            items = list(value)
            try:
                items.sort()
            except TypeError:
                pass
            return [self.to_json_value(item, f"{path}[{i}]") for i, item in enumerate(items)]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {
                f.name: self.to_json_value(getattr(value, f.name), f"{path}.{f.name}")
                for f in dataclasses.fields(value)
            }
        if isinstance(value, (dt.datetime, dt.date, dt.time)):
            return value.isoformat()
        if isinstance(value, (uuid.UUID, decimal.Decimal)):
            return str(value)
        if isinstance(value, (bytes, bytearray)):
            return base64.b64encode(bytes(value)).decode("ascii")
        model_dump = getattr(value, "model_dump", None)
        if callable(model_dump):  # pydantic v2 models
            return self.to_json_value(model_dump(mode="json"), path)
        raise SerializationError(
            f"Cannot serialize value of type {type(value).__qualname__} at {path}: "
            "use JSON types, tuples, dataclasses, datetimes, enums, or register an encoder "
            "with JsonDataConverter(encoders=...)"
        )

    # -- decoding -------------------------------------------------------------------------
    def loads(self, data: str | None, type_hint: Any = None) -> Any:
        """Decode JSON text; with ``type_hint``, rebuild the value as that type."""
        if data is None:
            return None
        try:
            value = parse(data)
        except json.JSONDecodeError as exc:
            raise SerializationError(f"Payload is not valid JSON: {exc}") from None
        except RecursionError:
            raise SerializationError(_TOO_DEEP) from None
        return self.from_json_value(value, type_hint)

    def from_json_value(self, value: Any, type_hint: Any) -> Any:
        """Rebuild plain JSON data ``value`` as ``type_hint`` (``None``/``Any``: unchanged)."""
        if type_hint is None or type_hint is Any or value is None:
            return value
        try:
            return self._convert(value, type_hint)
        except SerializationError:
            raise
        except RecursionError:
            raise SerializationError(_TOO_DEEP) from None
        except (TypeError, ValueError, KeyError) as exc:
            raise SerializationError(
                f"Cannot decode {value!r:.80} as {_type_name(type_hint)}: {exc}"
            ) from None

    def _convert(self, value: Any, hint: Any) -> Any:
        if hint is None or hint is Any or value is None or isinstance(hint, typing.TypeVar):
            return value
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin is typing.Annotated:
            return self._convert(value, args[0])
        if origin in (typing.Union, types.UnionType):
            options = [a for a in args if a is not type(None)]
            for option in options:
                try:
                    return self._convert(value, option)
                except (TypeError, ValueError, KeyError, SerializationError):
                    continue
            return value
        if origin is typing.Literal:
            return value
        if origin in (list, typing.List):  # noqa: UP006
            return [self._convert(v, args[0] if args else None) for v in value]
        if origin in (set, frozenset):
            return origin(self._convert(v, args[0] if args else None) for v in value)
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(self._convert(v, args[0]) for v in value)
            if args and len(args) != len(value):
                raise ValueError(f"expected {len(args)} items, got {len(value)}")
            return tuple(
                self._convert(v, a) for v, a in zip(value, args or [None] * len(value), strict=True)
            )
        if origin in (dict, typing.Dict):  # noqa: UP006
            vt = args[1] if len(args) == 2 else None
            return {k: self._convert(v, vt) for k, v in value.items()}
        if origin is not None:
            return value  # other generics (Sequence[...], Mapping[...]): plain JSON data
        if not isinstance(hint, type):
            return value
        for cls, decoder in self._decoders.items():
            if issubclass(hint, cls):
                return decoder(value) if cls is hint else _call_decoder(decoder, hint, value)
        if hint in (str, int, bool) or hint is float:
            if hint is float and isinstance(value, int):
                return float(value)
            if not isinstance(value, hint):
                raise TypeError(f"expected {hint.__name__}, got {type(value).__name__}")
            return value
        if hint is list or hint is dict:
            return value
        if hint is tuple:
            return tuple(value)
        if hint in (set, frozenset):
            return hint(value)
        if issubclass(hint, enum.Enum):
            return hint(value)
        if hint is dt.datetime:
            return dt.datetime.fromisoformat(value)
        if hint is dt.date:
            return dt.date.fromisoformat(value)
        if hint is dt.time:
            return dt.time.fromisoformat(value)
        if hint is uuid.UUID:
            return uuid.UUID(value)
        if hint is decimal.Decimal:
            return decimal.Decimal(value)
        if hint is bytes:
            return base64.b64decode(value)
        if dataclasses.is_dataclass(hint):
            field_types = typing.get_type_hints(hint)
            kwargs = {
                f.name: self._convert(value[f.name], field_types.get(f.name))
                for f in dataclasses.fields(hint)
                if f.init and f.name in value
            }
            return typing.cast(Any, hint)(**kwargs)
        model_validate = getattr(hint, "model_validate", None)
        if callable(model_validate):
            return model_validate(value)
        return value


def _call_decoder(decoder: Callable[[Any], Any], hint: type, value: Any) -> Any:
    try:
        return decoder(value)
    except TypeError:
        return hint(value)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__qualname__", None) or repr(hint)


def input_type_of(fn: Callable[..., Any]) -> Any:
    """The annotation of ``fn``'s input parameter (its second positional one), if any."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations mean "no hint"
        return None
    import inspect

    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return None
    if len(params) < 2:
        return None
    return hints.get(params[1].name)


def return_type_of(fn: Callable[..., Any]) -> Any:
    """The return annotation of ``fn`` (generators: their return type), if any."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001
        return None
    hint = hints.get("return")
    origin = typing.get_origin(hint)
    if origin is not None and getattr(origin, "__name__", "") == "Generator":
        args = typing.get_args(hint)
        return args[2] if len(args) == 3 else None
    return hint


default_converter = JsonDataConverter()


def _surrogate_message(plain: Any, error: UnicodeEncodeError) -> str:
    """Why a value with a lone surrogate is refused, naming where the first one is."""
    char = error.object[error.start]
    where = _surrogate_path(plain, "$") or "$"
    return (
        f"Cannot serialize the string at {where}: it contains the lone surrogate "
        f"U+{ord(char):04X}, which is not valid Unicode (bytes decoded with "
        "'surrogateescape', e.g. by os.fsdecode?); pass bytes, or decode with errors='replace'"
    )


def _surrogate_path(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return None if value.isascii() or _encodes(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            if not _encodes(key):
                return f"{path} (a key)"
            found = _surrogate_path(item, f"{path}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _surrogate_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


__all__ = [
    "DataConverter",
    "JsonDataConverter",
    "default_converter",
    "input_type_of",
    "return_type_of",
]
