"""Core statements compiled once, run straight on the DBAPI cursor.

The C-STORE path runs the same three statements for every instance. SQLAlchemy's
``Connection.execute`` sets up an execution context per call (cache lookup, parameter
processing, a result object), which cost several times SQLite's own work. A
:class:`CompiledStatement` has SQLAlchemy compile the statement once for the engine's
dialect (its SQL, parameter style and order, and each parameter's bind processor, e.g.
SQLite's datetime-to-string) and then only converts the parameters per call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import Executable

_Bind = tuple[str, bool, Any, Callable[[Any], Any] | None]  # name, required, value, processor


class CompiledStatement:
    """``statement`` as ``dialect`` runs it; ``keys``: the columns an INSERT sets."""

    def __init__(
        self, statement: Executable, dialect: Dialect, keys: list[str] | None = None
    ) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=keys)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        self._positional: bool = compiled.positional
        names = compiled.positiontup if compiled.positional else list(compiled.binds)
        self._binds: list[_Bind] = []
        for name in names or ():
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self._binds.append((name, bind.required, bind.value, processor))

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The DBAPI parameters for ``values`` (by bind name; fixed ones filled in)."""
        out = []
        for name, required, fixed, processor in self._binds:
            value = values[name] if required or name in values else fixed
            out.append(processor(value) if processor is not None and value is not None else value)
        if self._positional:
            return tuple(out)
        return {bind[0]: v for bind, v in zip(self._binds, out, strict=True)}

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        """Run on ``conn``'s DBAPI connection (in its current transaction, if any);
        return the DBAPI cursor."""
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(self.sql, self.parameters(values))
        return cursor
