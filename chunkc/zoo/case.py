"""The `ModelCase` record every zoo factory returns, and helpers for torch.export dims."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.export import Dim

# torch.export specializes an example size of 0 or 1, so symbolic sizes start at 2.
MIN_DIM = 2


def make_dim(name: str, min_size: int, max_size: int, multiple: int = 1) -> Any:
    """A torch.export dim for sizes in [min_size, max_size] that are multiples of `multiple`.

    With multiple > 1 the result is the derived dim `multiple * Dim(name)`: its root symbol
    `name` counts units of `multiple` (the export then knows, e.g., that an image side is
    divisible by the total downsampling stride).
    """
    if multiple == 1:
        return Dim(name, min=max(min_size, MIN_DIM), max=max_size)
    if min_size % multiple or max_size % multiple:
        raise ValueError(f"dim {name!r}: bounds {min_size}..{max_size} are not multiples of {multiple}")
    root = Dim(name, min=max(min_size // multiple, MIN_DIM), max=max_size // multiple)
    return multiple * root


def inference_module(module: torch.nn.Module) -> torch.nn.Module:
    """`module` in float32 and eval mode, with parameters that need no gradient."""
    module = module.float().eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator for deterministic inputs."""
    return torch.Generator().manual_seed(seed)


@dataclass
class ModelCase:
    """A model of the zoo, with everything needed to run, export and benchmark it.

    `size` below is the real dynamic extent (sequence length, image side, residue count).
    """

    name: str
    module: torch.nn.Module  # eval mode, float32, deterministic random weights
    make_inputs: Callable[[int], tuple]  # size -> positional args of module
    dynamic_shapes: Callable[[], Any]  # -> a fresh torch.export dynamic_shapes spec for make_inputs
    dynamic_name: str  # name of the torch.export root Dim (the symbol in exported shapes)
    test_sizes: tuple[int, int]  # two small sizes for tests (seconds per run)
    bench_sizes: tuple[int, ...]  # sizes for benchmarks
    size_multiple: int = 1  # size = size_multiple * <dynamic_name symbol>
    min_size: int = MIN_DIM  # bounds accepted by dynamic_shapes() (inclusive)
    max_size: int = 4096
    description: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # the factory's arguments, for reports

    def example_inputs(self) -> tuple:
        """Inputs at the first test size (the export example)."""
        return self.make_inputs(self.test_sizes[0])

    def symbol_value(self, size: int) -> int:
        """Value of the `dynamic_name` symbol for a real size."""
        if size % self.size_multiple:
            raise ValueError(f"{self.name}: size {size} is not a multiple of {self.size_multiple}")
        return size // self.size_multiple

    def check_size(self, size: int) -> None:
        """Raise ValueError when `size` is outside what the module and the export accept."""
        if not self.min_size <= size <= self.max_size:
            raise ValueError(f"{self.name}: size {size} outside [{self.min_size}, {self.max_size}]")
        self.symbol_value(size)


# Sequence models: tests at two small lengths.
TEST_LENGTHS = (16, 24)


def sequence_case(name: str, module: torch.nn.Module, make_inputs: Callable[[int], tuple], n_inputs: int,
                  max_len: int, bench_sizes: tuple[int, ...], description: str, config: dict[str, Any]) -> ModelCase:
    """A ModelCase whose `n_inputs` positional args all have the length L on axis 1."""

    def dynamic_shapes() -> tuple[dict[int, Any], ...]:
        length = make_dim("L", 2, max_len)
        return tuple({1: length} for _ in range(n_inputs))

    return ModelCase(
        name=name,
        module=module,
        make_inputs=make_inputs,
        dynamic_shapes=dynamic_shapes,
        dynamic_name="L",
        test_sizes=TEST_LENGTHS,
        bench_sizes=bench_sizes,
        max_size=max_len,
        description=description,
        config=config,
    )


def token_ids(vocab_size: int, seed: int) -> Callable[[int], tuple[torch.Tensor]]:
    """make_inputs of a language model: random token ids [1, L], seeded by `seed` + L."""
    def make_inputs(size: int) -> tuple[torch.Tensor]:
        return (torch.randint(0, vocab_size, (1, size), generator=seeded_generator(seed + size)),)

    return make_inputs
