"""One exception hierarchy for everything edgenas raises on purpose."""

from __future__ import annotations


class EdgeNasError(Exception):
    """Base of every error edgenas raises deliberately."""


def one_line(text: str) -> str:
    """`text` with line breaks and other unprintable characters escaped as Python writes them (`\\n`), so a
    file name, field or value the user typed with a newline in it cannot split an error message."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class ConfigError(EdgeNasError):
    """Bad user input: a config file, a field, a value. The CLI prints it on one line and exits 2."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        self.message = message  # without the "file: field: " prefix, to re-raise under another name
        self.source = source
        self.field = field
        parts = [p for p in (source, field, message) if p]
        super().__init__(one_line(": ".join(parts)))


class GraphError(EdgeNasError):
    """A network that cannot be built: shapes that do not agree, an unknown op."""


class CompileError(EdgeNasError):
    """The compiler rejected a model (kept as a failed Measurement during sweeps)."""


class ModelFileError(ConfigError):
    """A user-supplied model file that edgenas cannot read or does not accept."""
