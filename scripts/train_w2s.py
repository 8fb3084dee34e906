"""The main job as a script, for `accelerate launch`: the same as `w2s run` (w2s_hf/commands/run.py).

    accelerate launch --config_file accelerate_configs/cpu_2proc.yaml scripts/train_w2s.py
    python scripts/train_w2s.py --task lipophilicity --split random --output_dir runs/lipo   # one process

Every flag is `w2s run`'s (`--help` lists them); `--config file.yaml` supplies values the flags override.
"""

import sys

from w2s_hf.commands import exiting
from w2s_hf.commands.run import main

if __name__ == "__main__":
    sys.exit(exiting(main()))
