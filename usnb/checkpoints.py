"""Checkpoint files and weight averages: atomic saves, weights-only loads, the EMA update.

Models (pretrained weights, BYOL's target network) and the training loop (`usnb.train`) both use these, so they
live below both: no model imports the training loop.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from .paths import atomic_write


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write atomically (`usnb.paths.atomic_write`): an interrupted save leaves the last good checkpoint."""
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load a checkpoint with `weights_only=True`: tensors and plain data; pickled objects are refused."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file and the fix
        detail = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:200]}"
        objects = _pickled_objects(path) or re.findall(r"GLOBAL ([\w.]+)", str(err))  # torch < 2.5: from the message
        if objects or "Weights only load failed" in str(err):
            raise RuntimeError(
                f"{path}: checkpoint holds pickled Python objects ({', '.join(objects[:3]) or detail}); "
                "weights-only loading refuses them, since unpickling can run code. Fix: re-save it with tensors "
                "and plain data only, e.g. torch.save(model.state_dict(), path), or delete it to retrain") from err
        raise RuntimeError(f"{path}: not a readable weights-only checkpoint, truncated or corrupt ({detail}). "
                           "Fix: delete it to retrain") from err


def state_dict_of(state, path: str | Path, what: str, fix: str) -> dict:
    """The tensors of a weights file's contents (a state dict, or one under 'state_dict', 'model_state' or 'model');
    a RuntimeError naming the file, what it holds and `fix` where it holds no weights (a bare tensor, a list)."""
    for key in ("state_dict", "model_state", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not any(torch.is_tensor(v) for v in state.values()):
        held = f"a tensor of shape {tuple(state.shape)}" if torch.is_tensor(state) else \
            f"a {type(state).__name__}" + (f" with keys {list(state)[:5]}" if isinstance(state, dict) else "")
        raise RuntimeError(f"{path}: holds {held}, not the weights of {what} (a state dict: name -> tensor). "
                           f"Fix: {fix}")
    return state


def load_weights_into(net: torch.nn.Module, state, path: str | Path, what: str, fix: str) -> None:
    """`net.load_state_dict` from a weights file's contents, refusing a file that holds no weights or another
    network's, naming the file, how many of the network's tensors it matches and `fix`."""
    state = state_dict_of(state, path, what, fix)
    own = net.state_dict()
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        matched = sum(k in own and tuple(own[k].shape) == tuple(v.shape) for k, v in state.items() if torch.is_tensor(v))
        foreign = [k for k in state if k not in own][:3]
        raise RuntimeError(f"{path}: holds the weights of another network: {matched} of {len(own)} tensors of {what} "
                           f"match by name and shape" + (f" (it has e.g. {foreign})" if foreign else "")
                           + f". Fix: {fix}") from err


def _pickled_objects(path: str | Path) -> list[str]:
    """Names of the Python objects pickled into a checkpoint file ([] if none, or not a checkpoint)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - not a readable zip checkpoint: nothing to name
        return []


def ema_update(average: dict, state: dict, decay: float) -> None:
    """average <- decay * average + (1 - decay) * state for float tensors; other entries (counters) are copied."""
    with torch.no_grad():
        for k, v in state.items():
            if v.is_floating_point():
                average[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
            else:
                average[k].copy_(v)


def state_fingerprint(module: torch.nn.Module) -> str:
    """A short hash of a module's weights (names, shapes, values): the weights a run starts from, for a checkpoint's
    fingerprint (a fine-tuned row whose pretrained encoder changed must retrain)."""
    import hashlib

    digest = hashlib.sha1()
    for name, value in module.state_dict().items():
        digest.update(f"{name}{tuple(value.shape)}".encode())
        digest.update(value.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]
