"""Test-wide settings: never touch the HuggingFace Hub, keep logs quiet, use a throwaway HF_HOME.

These are set before anything imports transformers / datasets, and subprocesses (accelerate launch)
inherit them.
"""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
if "W2S_TEST_KEEP_HF_HOME" not in os.environ:
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="w2s_hf_home_")


# ---- tiny models for the feature tests (built once per session, saved with save_pretrained) ----
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """Folder of a 4-layer, hidden-32 BERT with a WordPiece tokenizer trained on local text."""
    from tiny_models import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> str:
    """Folder of a 4-layer, hidden-32 GPT-2 with a byte-level BPE tokenizer and no pad token."""
    from tiny_models import build_tiny_gpt2

    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "gpt2")
