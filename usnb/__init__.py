"""usnb: learn and replicate deep learning on ultrasound videos (one notebook per paper)."""
from __future__ import annotations

__version__ = "0.1.0"


def env_report() -> dict:
    """Versions and device: the print-out every notebook starts with."""
    import platform

    import torch
    import torchvision

    report = {"usnb": __version__, "python": platform.python_version(), "torch": torch.__version__,
              "torchvision": torchvision.__version__, "device": "cuda" if torch.cuda.is_available() else "cpu"}
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
    for name in ("decord", "av", "numpy", "sklearn"):
        try:
            report[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is reported, not fatal
            report[name] = "missing"
    return report
