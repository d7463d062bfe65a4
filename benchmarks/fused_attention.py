"""With fused attention: models that call ``scaled_dot_product_attention``, unchunked against
chunkc on top.

Fused attention already removes the L x L scores; what is left grows linearly with the input
(the residual stream, Q/K/V, the MLP's 4x intermediate).  For each model: the eager module with
explicit attention (for scale), the SDPA model's unchunked generated program, and chunkc's plans
at 50% and 30% of that (30% = the paper's "over 70% further reduction") and just above the lowest
peak chunkc reaches.  Causal SDPA gets an explicit mask from chunkc's ``explicit-causal-mask``
pass so that its query axis can be chunked.

    python -m benchmarks fused-attention
"""

from __future__ import annotations

from dataclasses import dataclass

from . import common as C
from . import memory_speed as MS

NAME = "fused-attention"
BUDGETS = (0.5, 0.3)
NEAR_FLOOR = 1.05


@dataclass(frozen=True)
class FusedCase:
    fused: C.BenchModel
    explicit: object  # () -> ModelCase: the same model with explicit attention
    size: int
    quick_size: int


def cases() -> dict[str, FusedCase]:
    from chunkc import zoo
    gpt = dict(n_layer=2, n_embd=256, n_head=4, n_positions=16384)
    tr = dict(n_layer=2, d=256, heads=4)
    vit = dict(n_layer=2, hidden=256, heads=8, patch=16, max_side=2048)
    return {
        "gpt2": FusedCase(C.BenchModel("gpt2", "GPT-2 (prefill), SDPA", lambda: zoo.gpt2(attn="sdpa", **gpt), "L",
                                       "transformers GPT2Model, 2 layers, n_embd 256, 4 heads, "
                                       "attn_implementation='sdpa' (causal, mask from transformers)"),
                          lambda: zoo.gpt2(attn="eager", **gpt), 4096, 1024),
        "transformer": FusedCase(C.BenchModel("transformer", "pre-LN transformer, SDPA",
                                              lambda: zoo.transformer(attn="sdpa", **tr), "L",
                                              "chunkc.zoo.transformer, 2 layers, d 256, 4 heads, "
                                              "F.scaled_dot_product_attention, no mask"),
                                 lambda: zoo.transformer(attn="eager", **tr), 4096, 1024),
        "transformer_causal": FusedCase(C.BenchModel("transformer_causal", "pre-LN transformer, causal SDPA",
                                                     lambda: zoo.transformer(attn="sdpa", causal=True, **tr), "L",
                                                     "as above with is_causal=True"),
                                        lambda: zoo.transformer(attn="eager", causal=True, **tr), 4096, 1024),
        "vit": FusedCase(C.BenchModel("vit", "ViT, SDPA", lambda: zoo.vit(attn="sdpa", **vit), "image side",
                                      "transformers ViTModel, 2 layers, hidden 256, 8 heads, patch 16, "
                                      "attn_implementation='sdpa'"),
                         lambda: zoo.vit(attn="eager", **vit), 1024, 384),
        "unet": FusedCase(C.BenchModel("unet", "UNet, SDPA", lambda: zoo.unet(max_side=512), "image side",
                                       "diffusers UNet2DModel, blocks (32, 64), attention blocks with diffusers' "
                                       "default (SDPA) processor"),
                          lambda: C.unet_explicit_attention(max_side=512), 128, 48),
    }


def _explicit_peak(case_factory, size: int) -> int | None:
    case = case_factory()
    try:
        return C.measure(None, case.make_inputs(size), module=case.module)
    except Exception as exc:
        C.log(f"[{NAME}] explicit-attention peak failed: {C.short_error(exc)}")
        return None


def _summary(results: list[tuple[FusedCase, MS.ModelResult, int | None]]) -> list[str]:
    rows = []
    for fc, res, explicit in results:
        if res.error:
            rows.append([fc.fused.label, res.error, "", "", "", "", ""])
            continue
        done = [r for r in res.rows if r.measured is not None and r.ratio]
        best = min(done, key=lambda r: r.measured, default=None)
        at30 = res.row(0.3)
        meets = "–"
        if at30 is not None and at30.measured is not None and at30.ratio:
            ok = at30.measured <= 0.3 * res.unchunked and at30.ratio.median <= 1.05
            meets = ("yes" if ok else "**no**") + f" ({at30.ratio.median:.3f} at {C.pct(at30.measured / res.unchunked)})"
        elif at30 is not None:
            meets = "**no**: no plan at 30%"
        rows.append([f"{fc.fused.label}, {fc.fused.size_name} = {res.size}",
                     C.mib(explicit), C.mib(res.unchunked),
                     f"{C.mib(best.measured)} ({C.pct(1 - best.measured / res.unchunked)} less)" if best else "–",
                     best.ratio.cell() if best else "–",
                     C.pct(res.floor / res.unchunked) + f" at `{res.floor_node}`" if res.floor else "–", meets])
    return C.table(["model", "explicit attention, eager MiB", "fused, unchunked MiB",
                    "chunkc on top, lowest measured MiB", "its time / unchunked",
                    "chunkc's floor (estimate, % of fused)", "≥ 70% further at ≤ 5% slower?"], rows)


def render(results, settings: C.Settings) -> str:
    lines = ["## With fused attention", "",
             "Models whose attention is `scaled_dot_product_attention` (a fused kernel: no L × L scores are "
             "stored).  *Explicit attention, eager*: the same model with explicit softmax attention, for "
             "scale.  *Fused, unchunked*: chunkc's generated program without a plan; budgets are fractions "
             "of its measured peak.  chunkc plans at 50% and 30% of it, and just above the lowest peak it "
             f"can reach (its floor × {NEAR_FLOOR:g}).  Paper: over 70% further reduction at about 5% "
             f"speed loss.  Times as in the memory-speed section ({settings.rounds} rounds).", ""]
    lines += _summary(results) + [""]
    for fc, res, _ in results:
        if res.error:
            lines += [f"### {fc.fused.label}", "", f"Failed: {res.error}", ""]
        else:
            lines += MS._model_table(res)
    return "\n".join(lines)


def run(settings: C.Settings, only: list[str] | None = None) -> C.SectionResult:
    results, failures = [], []
    for key, fc in cases().items():
        if only and key not in only:
            continue
        size = fc.quick_size if settings.quick else fc.size
        try:
            res = MS.measure_model(fc.fused, size, settings, budgets=BUDGETS, near_floor=NEAR_FLOOR)
        except Exception as exc:
            import traceback
            traceback.print_exc()
            res = MS.ModelResult(fc.fused, size, error=C.short_error(exc, 400))
            failures.append(f"{NAME} {key}: {res.error}")
        explicit = _explicit_peak(fc.explicit, size) if not res.error else None
        results.append((fc, res, explicit))
        for r in res.rows:
            if r.measured is not None and r.measured > r.budget_bytes:
                failures.append(f"{NAME} {key} {C.pct(r.fraction, 1)}: measured {r.measured} B over {r.budget_bytes} B")
    return C.SectionResult(render(results, settings), failures)
