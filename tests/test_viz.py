"""kanseg.viz: learned KAN functions against the layer itself, overlays, score tables, figures, benchmark
results, and the train-or-load comparison end to end on generated data."""

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from kanseg.config import load_config
from kanseg.errors import KansegError
from kanseg.kan import create_kan_conv, list_families
from kanseg.metrics import case_metrics
from kanseg.models import create_model
from kanseg.viz import (
    CaseView, basis_channel_owner, basis_curves, best_and_worst, case_table, case_views, error_overlay, figure_png,
    find_kan_layers, learned_functions, load_results, load_runs, markdown_table, metrics_rows, plot_basis_curves,
    plot_cases, plot_kernels, plot_layers, plot_learned_functions, plot_score_distribution, plot_training, result_kind,
    results_markdown, train_or_load,
)
from kanseg.viz.figures import FN_COLOUR, FP_COLOUR, TP_COLOUR

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
# families whose input map ν is pointwise (legendre min-max and rbf InstanceNorm use image statistics)
POINTWISE = [f for f in list_families() if f not in ("legendre", "rbf")]
STEPS = 9



def _perturbed(layer, seed=0):
    """Move every parameter off its initial value so no term is trivially zero or one."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return layer.eval()


def _pre_norm_output(layer, x):
    """What enters the layer's output norm (Σ of both branches) for input x."""
    seen = {}
    handle = layer.norm.register_forward_pre_hook(lambda m, args: seen.setdefault("y", args[0]))
    try:
        layer(x)
    finally:
        handle.remove()
    return seen["y"]


# --- learned functions ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", POINTWISE + ["gram-bottleneck", "wavelet-bottleneck"])
@pytest.mark.parametrize("nd,groups,taps", [(2, 1, "centre"), (2, 2, "sum"), (1, 2, "centre"), (3, 1, "sum")])
def test_learned_functions_reproduce_the_layer(family, nd, groups, taps):
    """On an image that is one pixel per tap, the layer's pre-norm output is Σ_i φ_oi(x_i) exactly."""
    layer = _perturbed(create_kan_conv(family, nd, 4, 6, 3, padding=1 if taps == "centre" else 0, groups=groups,
                                       norm="none"))
    fns = learned_functions(layer, x_range=(-1.5, 1.7), steps=STEPS, taps=taps)
    assert fns.basis.shape == (6, 4, STEPS) and fns.x.shape == (STEPS,)
    idx = torch.randint(0, STEPS, (5, 4), generator=torch.Generator().manual_seed(1))
    side = 1 if taps == "centre" else 3  # padding 1 + one pixel: only the centre tap; 3 pixels, no padding: all taps
    x = fns.x[idx].view(5, 4, *[1] * nd).expand(5, 4, *[side] * nd).contiguous()
    if layer.is_bottleneck:  # functions of the inner channels z, through out_proj
        assert fns.base is None
        got = layer.out_proj(layer.basis_conv(layer.expand(x)))
    else:
        got = _pre_norm_output(layer, x)
    expected = torch.stack([sum(fns.total[:, i, idx[b, i]] for i in range(4)) for b in range(5)])
    torch.testing.assert_close(got.reshape(5, 6), expected, atol=2e-6, rtol=1e-5)
    assert expected.abs().max() > 0.1


@pytest.mark.parametrize("family", list_families())
def test_learned_functions_every_family_finite(family):
    layer = create_kan_conv(family, 2, 4, 4, 3, padding=1)
    fns = learned_functions(layer, inputs=[1, 3], steps=17)
    assert fns.total.shape == (4, 2, 17) and fns.inputs == [1, 3] and torch.isfinite(fns.total).all()
    assert (fns.base is None) == (layer.base_conv is None)


def test_learned_functions_of_grouped_layer_are_zero_across_groups():
    layer = _perturbed(create_kan_conv("gram", 2, 4, 6, 3, padding=1, groups=2))
    fns = learned_functions(layer, steps=STEPS)
    assert fns.total[:3, 2:].abs().max() == 0 and fns.total[3:, :2].abs().max() == 0
    assert fns.total[:3, :2].abs().max() > 0


@pytest.mark.parametrize("family", POINTWISE)
def test_basis_channel_owner_matches_dependence(family):
    """Changing input channel c changes exactly the expanded channels the owner map assigns to c."""
    layer = create_kan_conv(family, 2, 4, 6, 3, padding=1, groups=2)
    basis = layer.basis
    x = torch.randn(1, 4, 2, 2)
    base = basis.expand(basis.input_map(x))
    owner = basis_channel_owner(basis)
    assert owner.shape == (base.shape[1],)
    for c in range(4):
        moved = x.clone()
        moved[:, c] += 0.7
        changed = (basis.expand(basis.input_map(moved)) - base).abs().flatten(2).amax(2)[0] > 0
        assert changed.any() and not changed[owner != c].any()


def test_basis_curves_values():
    x, cheb = basis_curves(create_kan_conv("chebyshev", 2, 3, 2, 3, degree=4), x_range=(-2, 2), steps=11, channel=2)
    t = torch.tanh(x)
    expected = torch.stack([torch.cos(n * torch.acos(t)) for n in range(5)])
    torch.testing.assert_close(cheb, expected, atol=1e-5, rtol=1e-5)
    _, bern = basis_curves(create_kan_conv("bernstein", 2, 3, 2, 3), steps=11)
    torch.testing.assert_close(bern.sum(0), torch.ones(11))  # partition of unity
    _, wave = basis_curves(create_kan_conv("wavelet", 2, 3, 5, 3), steps=11)
    assert wave.shape == (5, 11)  # one wavelet per output channel
    with pytest.raises(KansegError, match="out of range 0..2"):
        basis_curves(create_kan_conv("gram", 2, 3, 2, 3), channel=3)


def test_learned_functions_errors():
    layer = create_kan_conv("gram", 2, 2, 2, 3, padding=1)
    for kwargs, text in [({"taps": "corner"}, "valid: centre, sum"), ({"x_range": (1, 1)}, "x_range"),
                         ({"steps": 1}, "steps"), ({"inputs": [2]}, "out of range")]:
        with pytest.raises(KansegError, match=text):
            learned_functions(layer, **kwargs)
    with pytest.raises(KansegError, match="needs a KANConv"):
        learned_functions(torch.nn.Conv2d(2, 2, 3))


def test_find_kan_layers():
    kan = create_model("unet-gram", spatial_dims=2, in_channels=1, out_channels=1, base_width=4, depth=2)
    layers = find_kan_layers(kan)
    assert len(layers) >= 4 and all(layer.family == "gram" for _, layer in layers)
    assert dict(kan.named_modules())[layers[0][0]] is layers[0][1]
    assert find_kan_layers(create_model("unet-conv", spatial_dims=2, in_channels=1, out_channels=1,
                                        base_width=4, depth=2)) == []


# --- overlays and tables ----------------------------------------------------------------------------------------
def test_error_overlay_colours():
    image = np.zeros((4, 5), np.uint8)
    truth = np.zeros((4, 5), bool)
    pred = np.zeros((4, 5), bool)
    truth[0, :2] = pred[0, 0] = pred[1, 1] = True  # (0,0) TP, (0,1) FN, (1,1) FP, rest TN
    out = error_overlay(image, truth, pred)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    for (r, c), colour in [((0, 0), TP_COLOUR), ((0, 1), FN_COLOUR), ((1, 1), FP_COLOUR)]:
        assert np.argmax(out[r, c]) == np.argmax(colour) and out[r, c].max() > 0
    assert (out[3, 4] == 0).all()
    assert (error_overlay(image, truth)[0, 1] == out[0, 0]).all()  # GT alone is drawn as agreement
    with pytest.raises(KansegError, match="do not match"):
        error_overlay(image, truth[:3], pred[:3])


def _entry(scores, ids=("a", "b", "c")):
    cases = [{"id": i, "index": k, "dice": s, "iou": s / (2 - s), "hd95": 1.0}
             for k, (i, s) in enumerate(zip(ids, scores))]
    report = {"n_cases": len(cases), "per_image": {"dice": {"mean": float(np.mean(scores)), "std": 0.1},
                                                   "iou": {"mean": 0.5, "std": 0.1}, "hd95": {"mean": 1.0, "std": 0.0}},
              "global": {"dice": 0.7, "iou": 0.6}}
    return {"report": report, "cases": cases}


def test_case_table_best_worst_and_metrics():
    entries = {"unet-conv": _entry([0.9, 0.2, 0.5]), "unet-gram": _entry([0.7, 0.4, 0.6])}
    rows = case_table(entries)
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows[1] == {"id": "b", "index": 1, "unet-conv": 0.2, "unet-gram": 0.4, "mean": pytest.approx(0.3)}
    best, worst = best_and_worst(rows, "mean", k=1)
    assert best[0]["id"] == "a" and worst[0]["id"] == "b"
    best, worst = best_and_worst(rows, "unet-gram", k=2)
    assert [r["id"] for r in best] == ["a", "c"] and [r["id"] for r in worst] == ["b", "c"]
    with pytest.raises(KansegError, match="valid: unet-conv, unet-gram, mean"):
        best_and_worst(rows, "unet-kan")
    with pytest.raises(KansegError, match="different cases"):
        case_table({"x": _entry([0.1, 0.2, 0.3]), "y": _entry([0.1, 0.2, 0.3], ids=("a", "b", "z"))})
    with pytest.raises(KansegError, match="valid: dice, iou, hd95"):
        case_table(entries, metric="f1")
    table = markdown_table(metrics_rows(entries))
    assert table.count("\n") == 3 and "| unet-gram | 3 | 0.5667 ± 0.1000 |" in table


# --- figures ----------------------------------------------------------------------------------------------------
def _saved_png(fig, tmp_path, name):
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=40)
    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[0] > 50 and picture.std() > 0
    return picture


def test_figures(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    truth = np.zeros((12, 16), bool)
    truth[3:8, 4:10] = True
    views = [CaseView(str(k), image, truth, {"a": truth, "b": ~truth}, {"a": 1.0, "b": 0.0}) for k in range(2)]
    fig = plot_cases(views, title="demo")
    assert len(fig.axes) == 2 * 4
    assert fig.axes[2].get_title() == "a\nDice 1.000"
    _saved_png(fig, tmp_path, "cases")
    rows = [{"id": str(k), "a": 0.1 * k, "b": 0.05 * k} for k in range(5)]
    _saved_png(plot_score_distribution(rows, ["a", "b"]), tmp_path, "scores")
    fns = {f: learned_functions(create_kan_conv(f, 2, 3, 3, 3, padding=1), steps=11) for f in ("gram", "chebyshev")}
    fig = plot_learned_functions(fns, outputs=(0, 2), max_inputs=2)
    assert len(fig.axes) == 4 and len(fig.axes[0].lines) == 2 * 2 and len(fig.axes[2].lines) == 2  # no base: 1 line
    _saved_png(fig, tmp_path, "functions")
    fig = plot_learned_functions(fns, outputs=(0,), max_inputs=2, reference=fns)
    assert len(fig.axes[0].lines) == 2 * 3  # + the reference curves
    assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    curves = {f: basis_curves(create_kan_conv(f, 2, 3, 3, 3), steps=11) for f in ("gram", "bspline")}
    fig = plot_basis_curves(curves)
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 8  # bspline: grid 5 + order 3 functions
    with pytest.raises(KansegError, match="output channel 5"):
        plot_learned_functions(fns, outputs=(5,))
    with pytest.raises(KansegError, match="no cases"):
        plot_cases([])


# --- benchmark results ------------------------------------------------------------------------------------------
KERNELS = {"device": "cpu", "time_scale": 0.25, "repeats": 3, "rows": [
    {"family": "gram", "shape": "2d", "plain_saved_mib": 24.0, "eager_saved_mib": 120.0, "fused_saved_mib": 32.0,
     "eager_ms": 50.0, "fused_ms": 70.0}]}
TRAINING = {"dataset": "cvc", "split": "clean", "subset": "test", "epochs": 2, "rows": [
    {"model": m, "params": 1e5, "flops": 2e8, "input_shape": [3, 64, 64], "images_per_s": 10.0, "device": "cpu",
     "seeds": [0, 1], **{k: {"mean": 0.5, "std": 0.1, "values": [0.4, 0.6]} for k in ("dice", "iou", "hd95",
                                                                                      "global_iou")}}
    for m in ("unet-conv", "unet-gram")]}


def test_benchmark_results(tmp_path):
    for name, result in {"k.json": KERNELS, "t.json": TRAINING}.items():
        (tmp_path / name).write_text(json.dumps(result))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"something": 1}))
    found = load_results(tmp_path)
    assert sorted(found) == ["k.json", "t.json"]
    assert result_kind(KERNELS) == "kernels" and result_kind(TRAINING) == "training"
    text = results_markdown(KERNELS)
    assert "| gram | 2d | 24.0 | 120.0 | 32.0 | 50.0 | 70.0 |" in text and "compile ms" not in text  # absent column
    table = results_markdown(TRAINING)
    assert "| unet-gram | 0.100 | 0.200 | 10.0 | 0.5000 ± 0.1000 |" in table and "2 seeds, 2 epochs" in table
    with pytest.raises(KansegError, match="valid kinds: layers, kernels, predict-memory, model-memory, training"):
        result_kind({"something": 1})
    assert len(plot_kernels(KERNELS).axes) == 2 and len(plot_training(TRAINING).axes) == 2


def _stat(mean, std=0.0):
    return {"mean": mean, "std": std, "values": [mean - std, mean + std]}


def test_training_table_with_costs_and_classes_and_the_pareto_front():
    from kanseg.viz.benchmarks import pareto_front, plot_pareto

    result = json.loads(json.dumps(TRAINING))
    for r, (minutes, dice) in zip(result["rows"], [(2.0, 0.8), (6.0, 0.7)]):
        r.update(train_time_s=_stat(minutes * 60, 6.0), s_per_epoch=_stat(30.0, 1.0), peak_rss_mb=_stat(1536.0),
                 dice=_stat(dice, 0.01), per_class={"anterior": {k: _stat(0.9) for k in ("dice", "iou", "hd95")}})
    table = results_markdown(result)
    assert "| train time (min) | s/epoch | peak RSS (GB) |" in table
    assert "| unet-conv | 0.100 | 0.200 | 10.0 | 2.0 ± 0.1 | 30.0 ± 1.0 | 1.50 ± 0.00 | 0.8000 ± 0.0100 |" in table
    assert "| unet-gram | anterior | 0.9000 ± 0.0000 |" in table
    # cost lower is better, score higher is better: (3, 0.5) is beaten by (2, 0.8); ties in cost keep the best
    assert pareto_front([(2, 0.8), (6, 0.7), (3, 0.5), (8, 0.9), (2, 0.6)]) == [0, 3]
    fig = plot_pareto({"cvc": result, "other": result})
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel().startswith("training time")
    with pytest.raises(KansegError, match="train_time_s"):
        plot_pareto(TRAINING)  # results from before kanseg recorded training time
    result["rows"][1]["time_vs_reference"], result["rows"][0]["time_vs_reference"] = 3.0, 1.0  # a study
    assert "| unet-gram | 0.100 | 0.200 | 10.0 | 3.00 | 6.0 ± 0.1 |" in results_markdown(result)


def test_transfer_result_is_its_own_kind():
    arm = {k: _stat(v) for k, v in (("dice", 0.6), ("iou", 0.45), ("trainable_params", 1234.0),
                                    ("train_time_s", 30.0))}
    result = {"seeds": 3, "model": {"name": "unet-gram", "kwargs": {"base_width": 8}}, "image_size": [96, 128],
              "lr": 1e-3, "epochs_per_shots": {"10": 30}, "pretrained_val_dice": 0.7,
              "shots": {"10": {"pretrained": {"dice": 0.5, "iou": 0.4}, "arms": {"peft-E1": arm}}}}
    assert result_kind(result) == "transfer"
    table = results_markdown(result)
    assert "| 10 | pretrained, not adapted | 0 | 0.500 | 0.400 | 0 |" in table
    assert "| 10 | peft-E1 | 1,234 | 0.600 ± 0.000 | 0.450 ± 0.000 | 30 ± 0 |" in table


MODEL_MEMORY = {"device": "cpu", "batch": 2, "input": [3, 64, 64], "rows": [
    {"model": "unet-gram", "params": 10, "eager_saved_MiB": 40.0, "fused_saved_MiB": 10.0, "saved_ratio": 4.0,
     "eager_ms": 5.0, "fused_ms": 6.0}]}


def test_model_memory_result_is_its_own_kind():
    assert result_kind(MODEL_MEMORY) == "model-memory"          # not mistaken for a training result
    assert "| unet-gram | 10 | 40.0 | 10.0 | 4.0 | 5.0 | 6.0 |" in results_markdown(MODEL_MEMORY)
    from kanseg.viz.benchmarks import PLOTS
    assert len(PLOTS["model-memory"](MODEL_MEMORY).axes) == 1


def test_committed_results_render():
    found = load_results(RESULTS)
    if "layers-cpu.json" not in found:
        pytest.skip("benchmarks/results/layers-cpu.json not present")
    layers = found["layers-cpu.json"]
    text = results_markdown(layers)
    assert all(f"| {r['layer']} | {r['params']} |" in text for case in layers["cases"].values() for r in case["rows"])
    assert len(plot_layers(layers).axes) == 2 * len(layers["cases"])


# --- comparison end to end --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    from kanseg.data import ensure_demo

    return ensure_demo(tmp_path_factory.mktemp("demo") / "data")


def test_train_or_load_and_case_views(demo_root, tmp_path):
    base = load_config(None, {"data.dataset": "demo", "data.data_root": str(demo_root), "data.image_size": 32,
                              "model.kwargs": {"base_width": 4, "depth": 2}, "epochs": 1, "batch_size": 8,
                              "optim.lr": 1e-2, "device": "cpu"})
    runs = train_or_load(base, ["unet-conv", "unet-gram"], tmp_path / "runs", subset="test")
    assert list(runs) == ["unet-conv", "unet-gram"]
    stamp = {name: os.stat(run.checkpoint).st_mtime_ns for name, run in runs.items()}
    again = train_or_load(base, ["unet-conv", "unet-gram"], tmp_path / "runs", subset="test")
    assert {name: os.stat(run.checkpoint).st_mtime_ns for name, run in again.items()} == stamp  # reused
    assert again["unet-gram"].evaluation["cases"] == runs["unet-gram"].evaluation["cases"]
    changed = base.model_copy(deep=True)
    changed.epochs = 2
    assert train_or_load(changed, ["unet-conv"], tmp_path / "runs")["unet-conv"].run_dir != runs["unet-conv"].run_dir

    rows = case_table({name: run.evaluation for name, run in runs.items()})
    assert len(rows) == 8
    ids = [rows[0]["id"], rows[-1]["id"]]
    views = case_views(runs, ids)
    for view in views:
        assert view.image.shape[:2] == view.truth.shape == (64, 64)
        for name, mask in view.predictions.items():
            # the Predictor's mask scores exactly what evaluation recorded for that case
            assert case_metrics(mask, view.truth, with_hd95=False)["dice"] == pytest.approx(view.scores[name], abs=1e-6)
    with pytest.raises(KansegError, match="not in the test subset"):
        case_views(runs, ["nope"])

    copy = tmp_path / "copy"
    shutil.copytree(runs["unet-conv"].run_dir, copy)
    (copy / "summary.json").unlink()
    loaded = load_runs({"conv": copy}, subset="test")  # evaluated again, and recorded
    assert loaded["conv"].evaluation["cases"] == runs["unet-conv"].evaluation["cases"]
    assert "test" in json.loads((copy / "summary.json").read_text())
    with pytest.raises(KansegError, match="not a finished kanseg run"):
        load_runs({"x": tmp_path})


def test_make_readme_rewrites_marked_tables(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_readme", RESULTS.parent / "make_readme.py")
    make_readme = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_readme)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.json").write_text(json.dumps({**TRAINING, "machine": "CPU Test (1 threads)"}))
    (tmp_path / "results" / "k.json").write_text(json.dumps(KERNELS))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- table: t.json -->\nold table\n<!-- end table -->\nprose\n"
                      "<!-- table: gone.json -->\nkept\n<!-- end table -->\n")
    assert make_readme.main(["--readme", str(readme), "--results", str(tmp_path / "results"), "--check"]) == 1
    assert make_readme.main(["--readme", str(readme), "--results", str(tmp_path / "results")]) == 0
    text = readme.read_text()
    assert "old table" not in text and "Measured on: CPU Test (1 threads)" in text and "| unet-gram |" in text
    assert text.startswith("intro\n") and "prose\n" in text and "\nkept\n" in text  # hand-written parts stay
    _, missing, unplaced = make_readme.render(text, load_results(tmp_path / "results"))
    assert missing == ["gone.json"] and unplaced == ["k.json"]
    assert not (tmp_path / "figures").exists()  # the study figure needs the study's results
    timed = {**TRAINING, "rows": [{**r, "train_time_s": {"mean": 60.0, "std": 1.0, "values": [59.0, 61.0]}}
                                  for r in TRAINING["rows"]]}
    for name in make_readme.FIGURES["kan-study-cvc-pareto.png"]:
        (tmp_path / "results" / name).write_text(json.dumps(timed))
    assert make_readme.main(["--readme", str(readme), "--results", str(tmp_path / "results")]) == 0
    assert (tmp_path / "figures" / "kan-study-cvc-pareto.png").read_bytes().startswith(b"\x89PNG")
