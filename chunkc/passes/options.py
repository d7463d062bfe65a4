"""The options of ``autochunk`` that a pipeline can set, in a module of their own so that the
pipeline's passes can name them without importing the planner."""

from __future__ import annotations

from dataclasses import dataclass

from .plan import DEFAULT_BACKEND


@dataclass(frozen=True)
class SearchKnobs:
    """The options of ``autochunk`` that a pipeline can set (``autochunk{beam=8}``)."""

    beam: int = 3  # partial plans kept per stage
    per_state: int = 4  # children kept per partial plan
    ends_window: int = 48  # region ends tried after the peak step
    max_region_nodes: int = 320  # longest span walked
    max_stages: int = 512
    widen: int = 4  # when the beam finds nothing: search again this many times wider (1: never)
    remat: bool = True  # recompute cheap, large values at their readers
    # when no plan meets the budget: recompute, at each reader, the value the lowest plan holds
    # whole, and plan again, at most this many times (0: never; chunkc.passes.remat.recompute_chain)
    recompute_rounds: int = 16
    recompute_nodes: int = 128  # the longest producer chain one such round recomputes at each reader
    recompute_keep_tries: int = 4  # recompute rounds of a plan that met the budget tried left out, dearest first
    # when no flat plan meets the budget: loops over rows with inner loops over the keys that
    # attention accumulates over, recomputing them from the layer input (chunkc.passes.nest)
    nested: bool = True
    rewrite: bool = True  # fold splits of fused projections, schedule wholly-read work first
    backend: str = DEFAULT_BACKEND  # whose kernels the plan's memory is estimated for
    device: str = "cpu"  # where it runs: whose allocator and kernel workspace count, which kernel costs
    progress: bool = True  # a progress bar for searches over a second (interactive terminals only)
    mode: str = "inference"  # "train": the budget holds a training step, forward and backward
    # the compiler the generated program runs under: None (eager) or "inductor" (torch.compile);
    # the cost model prices its fused kernels and chooses chunks for them (chunkc.passes.cost.TimeModel)
    compiled: str | None = None


__all__ = ["SearchKnobs"]
