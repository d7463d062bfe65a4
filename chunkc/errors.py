"""Errors raised by chunkc. Every message names the op, node or file at fault."""


class ChunkcError(Exception):
    """Base class of every error chunkc raises on purpose."""


class IRError(ChunkcError):
    """Malformed IR: refused when it is built, parsed or verified."""


class ParseError(IRError):
    """The text form of a graph could not be parsed."""


class UnsupportedOpError(ChunkcError):
    """An op the importer or a backend does not know."""


class InfeasibleBudgetError(ChunkcError):
    """No plan reaches the requested memory budget."""

    def __init__(self, message: str, lowest_peak_bytes: int, peak_node: str | None):
        super().__init__(message)
        self.lowest_peak_bytes = lowest_peak_bytes
        self.peak_node = peak_node
