"""What a newcomer trips on: the default split follows the input kind, and messages name the CLI flags."""

from __future__ import annotations

import pytest

from w2s_hf.data import TaskDataError, load_task


@pytest.fixture(scope="module")
def essays(tmp_path_factory):
    from w2s_hf.data.fixtures import write_synthetic_ellipse

    return str(write_synthetic_ellipse(tmp_path_factory.mktemp("essays") / "essays.csv", n=60, seed=0))


def _args(model: str, tmp_path, *extra: str) -> list[str]:
    return ["--weak_model", model, "--strong_model", model, "--strong_layer", "1", "--report_to", "none",
            "--cache_dir", str(tmp_path / "cache"), *extra]


def test_default_split_is_scaffold_for_smiles_and_random_for_text(essays, tiny_bert, tmp_path):
    pytest.importorskip("rdkit")
    from w2s_hf.config import parse_config
    from w2s_hf.pipeline import W2SPipeline

    assert parse_config([]).task.split == "auto"
    # a text file runs on the defaults (it failed on the scaffold default before)
    text = W2SPipeline(parse_config(_args(tiny_bert, tmp_path, "--task", essays, "--targets", "cohesion",
                                          "--output_dir", str(tmp_path / "text"))))
    assert text.task.split == "random"
    random = load_task(essays, split="random", targets=["cohesion"])
    assert text.task.splits["test"]["id"] == random.splits["test"]["id"]
    # SMILES: auto is the scaffold split, and a run keeps the identity it had under "scaffold"
    auto = W2SPipeline(parse_config(_args(tiny_bert, tmp_path, "--output_dir", str(tmp_path / "a"))))
    scaffold = W2SPipeline(parse_config(_args(tiny_bert, tmp_path, "--split", "scaffold", "--output_dir",
                                              str(tmp_path / "b"))))
    assert auto.task.split == "scaffold" and auto.identity_hash == scaffold.identity_hash
    assert auto.task.splits["test"]["id"] == scaffold.task.splits["test"]["id"]


def test_messages_name_the_command_line_flag_too(essays, tmp_path):
    with pytest.raises(TaskDataError, match=r"use --split random or --split auto \(Python: split='random'\)"):
        load_task(essays, split="scaffold", targets=["cohesion"])
    with pytest.raises(ValueError, match=r"--threshold T \(Python: threshold=T\)"):
        load_task("esol", task_type="classification")
    with pytest.raises(TaskDataError, match=r"--input_column \(Python: input_column=\.\.\.\)"):
        load_task("x", path=essays, input_column="nope", target_columns=["cohesion"])


def test_input_kind_flag_reaches_the_task(essays):
    from w2s_hf.config import parse_config

    config = parse_config(["--task", essays, "--input_column", "full_text", "--target_columns", "cohesion",
                           "--input_kind", "text"])
    assert config.task.load_kwargs()["input_kind"] == "text"
    with pytest.raises(SystemExit):  # argparse: "invalid choice: 'protein' (choose from 'text', 'smiles')"
        parse_config(["--input_kind", "protein"])


def _block(divergence: str, seed: int) -> dict:
    import numpy as np

    from w2s_hf.decomposition.core import decompose

    rng = np.random.default_rng(seed)
    if divergence == "kl":
        def probs() -> np.ndarray:
            return rng.dirichlet(np.ones(3), size=40)
        y = np.eye(3)[rng.integers(3, size=40)]
        return decompose(y, probs(), probs(), probs(), n_boot=20, divergence="kl").as_dict()
    y = rng.normal(size=40)
    return decompose(y, y + rng.normal(size=40), y + 0.5 * rng.normal(size=40), y, n_boot=20).as_dict()


@pytest.mark.parametrize("divergence, label", [("kl", "cross-entropy"), ("squared", "mean squared error")])
def test_decomposition_plot_names_the_divergence_and_shows_the_lora_student(divergence, label, tmp_path):
    from w2s_hf.hooks.evaluation import PlotHook

    splits = {s: _block(divergence, i) for i, s in enumerate(("w2s_train", "val", "test"))}
    lora = {s: _block(divergence, 10 + i) for i, s in enumerate(("w2s_train", "val", "test"))}
    results = {"splits": splits, "students": {
        "w2s": {"kind": "linear", "covered_by_theorem": True, "splits": splits},
        "w2s_lora": {"kind": "lora", "covered_by_theorem": False, "splits": lora}}}
    hook = PlotHook(tmp_path / "decomposition.png")
    fig = hook.figure(results)
    labels = {ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()}
    assert labels and all(label in y for y in labels)
    if divergence == "kl":
        assert not any("squared" in y for y in labels)
    titles = [ax.get_title() for ax in fig.axes]
    assert sum("w2s_lora (lora" in t for t in titles) == 3 and len(titles) == 6
    hook.on_end(results)
    assert (tmp_path / "decomposition.png").stat().st_size > 0


def test_sweep_plot_keeps_its_title_inside_and_misfit_from_zero():
    from w2s_hf.hooks.plots import misfit_vs_gain_figure

    rows = [{"misfit": m, "gain": g, "target": "logd", "weak_model": w}
            for m, g, w in ((0.01, -0.02, "a"), (0.2, 0.15, "b"), (0.4, 0.45, "c"))]
    title = "lipophilicity (scaffold), strong = packaged:all-mpnet-base-v2, a rather long sweep name " * 2
    fig = misfit_vs_gain_figure(rows, panel_key="target", title=title)
    fig.canvas.draw()
    box, frame = fig._suptitle.get_window_extent(), fig.bbox
    assert box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y1 <= frame.y1
    for ax in fig.axes:
        if ax.get_xlabel() == "misfit":
            assert ax.get_xlim()[0] == 0.0
            assert box.y0 >= ax.get_window_extent().y1  # the title does not cover the panel
