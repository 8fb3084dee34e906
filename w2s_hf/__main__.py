"""`python -m w2s_hf <command> ...`: the `w2s` command (see w2s_hf/cli.py), also under `accelerate launch -m`."""

import sys

from w2s_hf.cli import main
from w2s_hf.commands import exiting

sys.exit(exiting(main()))
