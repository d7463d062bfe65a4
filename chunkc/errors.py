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
    """No plan reaches the requested memory budget.  ``held``: the values held in full at the
    lowest peak the search reaches (value name in the planned graph -> bytes, largest first; a
    recomputed copy under the value it recomputes), when the search knows them: what a lower
    floor would have to remove."""

    def __init__(self, message: str, lowest_peak_bytes: int, peak_node: str | None,
                 held: dict[str, int] | None = None):
        super().__init__(message)
        self.lowest_peak_bytes = lowest_peak_bytes
        self.peak_node = peak_node
        self.held = dict(held or {})


class InputError(ChunkcError):
    """A compiled program was called with inputs that do not match its graph's signature
    (count, array type, dtype, device, rank, sizes); the message names the input."""


class BudgetExceededError(ChunkcError):
    """At the sizes of a call, the plan's chunk sizes cannot hold its memory budget
    (raised before anything is allocated, with ``compile(..., strict=True)``)."""

    def __init__(self, message: str, sizes: dict[str, int], budget_bytes: int, peak_bytes: int):
        super().__init__(message)
        self.sizes = sizes
        self.budget_bytes = budget_bytes
        self.peak_bytes = peak_bytes


class BudgetWarning(UserWarning):
    """A plan's budget will not hold (at a call's sizes, or for another backend), said once."""
