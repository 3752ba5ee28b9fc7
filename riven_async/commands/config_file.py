"""Comment-preserving edits of the config file: validated first, written atomically, locked.

Every edit runs under an exclusive ``flock`` on the file's directory (the file itself is
replaced by a rename, so a lock on it would not be held by the next writer), re-reads the
file, changes one key with tomlkit (comments, order and formatting survive), validates
the whole result against the settings model, and only then renames a fully written,
fsynced temporary file over the old one, with the old file's permissions.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import tempfile
import tomllib
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import tomlkit
import tomlkit.items
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from tomlkit.container import Container

from riven_async.config import ENV_PREFIX, Settings, example_config_text, load_settings
from riven_async.errors import ConfigError

NEW_FILE_MODE = 0o600
_KEY_PART_RE = re.compile(r"^[A-Za-z0-9_-]+$")
Shape = Literal["section", "table", "list", "string", "scalar"]
KeyPath = tuple[str, ...]


class _FileOnlySettings(Settings):
    """The settings model fed from the file's content alone: no env, no credentials.

    An environment override must not hide an invalid value from the file, which would
    then break the first start without that variable.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


@dataclass(frozen=True, slots=True)
class Edit:
    """What an edit did: the key, the value now in the file (None: removed), whether the
    file changed, and the env variable that overrides the key, if one is set."""

    key: str
    value: Any
    changed: bool
    overridden_by: str | None


def split_key(key: str) -> KeyPath:
    """``"upstreams.realdebrid.api_key"`` -> its parts; reject empty or odd parts."""
    parts = tuple(key.strip().split("."))
    if not key.strip() or not all(_KEY_PART_RE.match(part) for part in parts):
        raise ConfigError("<key>", "a key is dotted names like server.port", key=key)
    return parts


def field_annotation(parts: KeyPath, *, path: Path) -> Any:
    """The type the settings model expects at ``parts`` (ConfigError for unknown keys)."""
    annotation: Any = Settings
    for depth, part in enumerate(parts):
        model = _model_class(annotation)
        dotted = ".".join(parts[: depth + 1])
        if model is not None:
            field = model.model_fields.get(part)
            if field is None:
                raise ConfigError(
                    path, "unknown key (check the spelling; see config.example.toml)", dotted
                )
            annotation = field.annotation
        elif _origin_is(annotation, dict):
            annotation = get_args(_without_none(annotation))[1]
        else:
            parent = ".".join(parts[:depth])
            raise ConfigError(path, f"{parent} is a single value, not a table", dotted)
    return annotation


def shape_of(annotation: Any) -> Shape:
    """How a command-line string becomes a value of this type."""
    bare = _without_none(annotation)
    if _model_class(bare) is not None:
        return "section"
    if _origin_is(bare, dict):
        return "table"
    if _origin_is(bare, list):
        return "list"
    if bare in (str, SecretStr, Path) or _is_string_literal(bare):
        return "string"
    return "scalar"


def is_secret(parts: KeyPath) -> bool:
    """True when the key holds a secret (masked in every output)."""
    return _without_none(field_annotation(parts, path=Path("<key>"))) is SecretStr


def parse_value(text: str, annotation: Any) -> Any:
    """Turn the command-line ``text`` into a value for a key of type ``annotation``.

    TOML syntax is accepted everywhere (``9000``, ``true``, ``["a", "b"]``, ``{a = 1}``,
    ``"quoted"``); strings may be given bare (``0.0.0.0``), lists also as ``a,b,c``.
    Anything else is handed to validation as it is, which names the key and the reason.
    """
    shape = shape_of(annotation)
    ok, parsed = _toml_value(text)
    if shape == "string":
        return parsed if ok and isinstance(parsed, str) else text
    if shape == "list":
        if ok and isinstance(parsed, list):
            return parsed
        element = get_args(_without_none(annotation))
        item_type = element[0] if element else str
        return [parse_value(part.strip(), item_type) for part in text.split(",") if part.strip()]
    return parsed if ok else text


def env_override(parts: KeyPath) -> str | None:
    """The environment variable that overrides this key, if one is set now."""
    name = ENV_PREFIX + "__".join(parts).upper()
    return name if name in os.environ else None


# -- reading ---------------------------------------------------------------------------------


def read_document(path: Path) -> tomlkit.TOMLDocument:
    """The file as a tomlkit document (ConfigError naming line and column if it is broken)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "file not found") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror}") from None
    try:
        tomllib.loads(text)  # tomllib's messages carry the line and column
        return tomlkit.parse(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"invalid TOML: {exc}") from None


def value_at(settings: BaseModel | dict[str, Any], parts: KeyPath) -> Any:
    """The value at ``parts`` in loaded settings or their plain form (KeyError if absent)."""
    node: Any = settings
    for part in parts:
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def plain(value: Any, *, reveal: bool) -> Any:
    """A settings value as plain data (for TOML, JSON or text); secrets masked unless
    ``reveal``; None is kept (TOML writers leave such keys out)."""
    if isinstance(value, BaseModel):
        return {name: plain(getattr(value, name), reveal=reveal)
                for name in type(value).model_fields}
    if isinstance(value, SecretStr):
        raw = value.get_secret_value()
        return raw if reveal or not raw else "********"
    if isinstance(value, dict):
        return {str(k): plain(v, reveal=reveal) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, reveal=reveal) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def to_toml(data: dict[str, Any]) -> str:
    """Plain data as TOML text; None values (unset optional keys) are left out."""
    return tomlkit.dumps(_drop_none(data))


# -- editing ---------------------------------------------------------------------------------


def set_value(path: Path, key: str, text: str) -> Edit:
    """Set ``key`` to ``text`` (parsed for the key's type) in the file at ``path``."""
    parts = split_key(key)
    annotation = field_annotation(parts, path=path)
    if shape_of(annotation) == "section":
        raise ConfigError(path, "is a section; set its keys one by one", key)
    candidate = parse_value(text, annotation)
    with _locked(path) as target:
        document = read_document(target)
        before = document.as_string()
        _put(document, parts, candidate)
        validated = _validate_content(document, target)
        # Store what validation made of the value ("yes" -> true, 5 -> 5.0, "4k" -> "2160p"),
        # so the file says exactly what the daemon will use.
        stored = plain(value_at(validated, parts), reveal=True)
        if stored != candidate:
            _put(document, parts, stored)
            _validate_content(document, target)
        after = document.as_string()
        if after != before:
            _install(target, after)
    return Edit(key, stored, after != before, env_override(parts))


def unset_value(path: Path, key: str) -> Edit:
    """Remove ``key`` from the file (its default applies again); a no-op if it is absent.

    Keys unknown to the model can be removed too: that is how a misspelt key is fixed.
    """
    parts = split_key(key)
    with _locked(path) as target:
        document = read_document(target)
        parent = _find(document, parts[:-1])
        if parent is None or parts[-1] not in parent:
            return Edit(key, None, False, env_override(parts))
        del parent[parts[-1]]
        _validate_content(document, target)
        _install(target, document.as_string())
    return Edit(key, None, True, env_override(parts))


def write_new_config(path: Path, *, force: bool) -> str:
    """Write the commented example with a fresh API key; return the key.

    Never replaces an existing file unless ``force``; the new file is 0600.
    """
    api_key = secrets.token_urlsafe(32)
    document = tomlkit.parse(example_config_text())
    server = document["server"]
    assert isinstance(server, tomlkit.items.Table)
    server["api_key"] = api_key
    text = document.as_string()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path, must_exist=False) as target:
        if target.exists() and not force:
            raise FileExistsError(str(target))
        _validate_text(text, target)
        _install(target, text, mode=NEW_FILE_MODE)
    return api_key


# -- internals -------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path, *, must_exist: bool = True) -> Iterator[Path]:
    """Hold the directory lock; yield the real file (a symlinked config is edited in place)."""
    target = Path(os.path.realpath(path))
    if must_exist and not target.is_file():
        raise ConfigError(path, "file not found" if not target.exists() else "not a regular file")
    fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield target
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _install(target: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` next to ``target`` and rename it over; keep mode (and owner) of the
    old file, 0600 for a new one."""
    try:
        old = target.stat()
    except FileNotFoundError:
        old = None
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        wanted = mode if mode is not None or old is None else old.st_mode & 0o7777
        os.chmod(temp, NEW_FILE_MODE if wanted is None else wanted)
        if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
            with contextlib.suppress(PermissionError):
                os.chown(temp, old.st_uid, old.st_gid)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _validate_content(document: tomlkit.TOMLDocument, target: Path) -> Settings:
    """The edited document's own settings, once it also loads as the daemon would load it
    (env overrides, credentials, cross-key checks)."""
    return _validate_text(document.as_string(), target)


def _validate_text(text: str, target: Path) -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(target, f"the edit would make invalid TOML: {exc}") from None
    try:
        # What the file itself says: the value to store. Env overrides and credentials
        # must never be copied into the file.
        from_file = _FileOnlySettings(**data)
    except ValidationError as exc:
        raise ConfigError.from_validation(target, exc) from None
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".check",
                                     dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        load_settings(temp)  # and as the daemon would load it: cross-key checks
        return from_file
    except ConfigError as exc:
        raise ConfigError(target, exc.reason, exc.key) from None
    finally:
        temp.unlink(missing_ok=True)


def _find(document: tomlkit.TOMLDocument, parts: KeyPath) -> Container | Any | None:
    node: Any = document
    for part in parts:
        if not hasattr(node, "get"):
            return None
        node = node.get(part)
        if node is None:
            return None
    return node if hasattr(node, "__delitem__") else None


def _put(document: tomlkit.TOMLDocument, parts: KeyPath, value: Any) -> None:
    node: Any = document
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            annotation = field_annotation(parts[: depth + 1], path=Path("<key>"))
            if shape_of(annotation) == "table":
                child = tomlkit.inline_table()
            else:
                child = tomlkit.table()
                child.add(tomlkit.nl())
            node[part] = child
            child = node[part]
        node = child
    node[parts[-1]] = _item(value)


def _item(value: Any) -> Any:
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        for key, inner in value.items():
            table[key] = _item(inner)
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        for inner in value:
            array.append(_item(inner))
        return array
    return tomlkit.item(value)


def _toml_value(text: str) -> tuple[bool, Any]:
    try:
        return True, tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return False, None


def _drop_none(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _drop_none(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_drop_none(v) for v in data]
    return data


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _model_class(annotation: Any) -> type[BaseModel] | None:
    bare = _without_none(annotation)
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return bare
    return None


def _origin_is(annotation: Any, container: type) -> bool:
    return get_origin(_without_none(annotation)) is container


def _is_string_literal(annotation: Any) -> bool:
    return get_origin(annotation) is Literal and all(
        isinstance(arg, str) for arg in get_args(annotation)
    )
