"""A model at a glance: one row per block (name, kind, output shape, parameters), not `print(model)`'s 100 lines."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Summary:
    rows: list[tuple[str, str, str, int]]  # (name, kind, output shape, parameters)
    total: int
    trainable: int

    def to_markdown(self) -> str:
        lines = ["| block | kind | output shape | parameters |", "| --- | --- | --- | ---: |"]
        lines += [f"| {name} | {kind} | {shape} | {n:,} |" for name, kind, shape, n in self.rows]
        lines.append(f"| **total** | | | **{self.total:,}** ({self.trainable:,} trainable) |")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:  # Jupyter shows the table rendered
        return self.to_markdown()

    def __str__(self) -> str:
        width = max(len(r[0]) for r in self.rows) if self.rows else 5
        lines = [f"{name:<{width}}  {kind:<22} {shape:<22} {n:>12,}" for name, kind, shape, n in self.rows]
        return "\n".join(lines + [f"{'total':<{width}}  {'':<22} {'':<22} {self.total:>12,} ({self.trainable:,} trainable)"])


def _shape(out) -> str:
    if isinstance(out, torch.Tensor):
        return "x".join(map(str, out.shape))
    if isinstance(out, dict):
        return ", ".join(f"{k} {_shape(v)}" for k, v in out.items() if isinstance(v, torch.Tensor))
    if isinstance(out, (tuple, list)) and out:
        return _shape(out[0]) + (f" (+{len(out) - 1})" if len(out) > 1 else "")
    return "-"


@torch.no_grad()
def model_summary(model: nn.Module, *inputs, depth: int = 1) -> Summary:
    """The blocks of `model` down to `depth` levels of nesting, each with its output shape on `inputs` (one forward
    pass, in eval mode) and its parameter count; blocks that the pass does not reach show '-'."""
    shapes: dict[str, str] = {}

    def record(name):
        def hook(module, args, out):  # returns None: the output passes on unchanged
            shapes.setdefault(name, _shape(out))
        return hook

    hooks = [module.register_forward_hook(record(name)) for name, module in model.named_modules()
             if name and name.count(".") < depth]
    was_training = model.training
    model.eval()
    try:
        if inputs:
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    rows = [(name, type(module).__name__, shapes.get(name, "-"), sum(p.numel() for p in module.parameters()))
            for name, module in model.named_modules() if name and name.count(".") < depth]
    return Summary(rows, sum(p.numel() for p in model.parameters()),
                   sum(p.numel() for p in model.parameters() if p.requires_grad))


def n_params(model: nn.Module, trainable: bool = False) -> int:
    """Parameters of `model`; `trainable`: only those the optimizer updates (requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)
