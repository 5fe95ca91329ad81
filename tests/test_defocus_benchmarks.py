"""The defocus benchmarks' pieces: rank correlations, per-patch defocus and PSNR, the premise plot."""
import numpy as np
import pytest
from PIL import Image

from benchmarks.defocus_premise import draw_plot, patch_defocus, patch_psnr, summarize
from benchmarks.stats import pearson, ranks, spearman


def test_ranks_and_correlations_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 40).astype(float)  # many ties
    y = x + rng.normal(0, 2, 40)
    np.testing.assert_allclose(ranks(x), stats.rankdata(x))
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert spearman(x, np.exp(y)) == pytest.approx(spearman(x, y))  # ranks only
    assert np.isnan(pearson(np.ones(5), np.arange(5)))


def test_patch_defocus_is_the_models_mean_of_log_cells():
    sigma = np.zeros((64, 100), np.float32)
    sigma[:32, 32:64] = 3.0  # one 32-px patch blurred, cells of mean 3 px
    values = patch_defocus(sigma, 32)
    assert values.shape == (6,)  # 2 x 3 whole patches, the 4-px remainder dropped
    np.testing.assert_allclose(values, [0, np.log1p(3.0), 0, 0, 0, 0], rtol=1e-6)


def test_patch_psnr_per_patch_and_capped():
    reference = np.full((32, 64), 100, np.uint8)
    decoded = reference.copy()
    decoded[:, 32:] += 10  # right patch: MSE 100
    np.testing.assert_allclose(patch_psnr(reference, decoded, 32), [60.0, 10 * np.log10(255**2 / 100)])


def test_summary_sees_the_premise_when_it_holds():
    rng = np.random.default_rng(1)
    defocus = rng.uniform(0, 2, 300)
    data = {"defocus": defocus, "image": np.repeat(np.arange(3), 100), 10: 27 + 2 * defocus + rng.normal(0, 0.5, 300)}
    s = summarize(data, 10)
    assert s["pearson"] > 0.8 and s["spearman"] > 0.8 and s["image_spearman"] > 0.8
    assert s["thirds"][0] < s["thirds"][1] < s["thirds"][2]
    data[10] = data[10][::-1].copy()
    assert summarize(data, 10)["spearman"] < 0.2


def test_plot_is_drawn(tmp_path):
    rng = np.random.default_rng(2)
    results = {name: {"defocus": rng.uniform(0, 2, 50), 10: rng.uniform(25, 35, 50), 40: rng.uniform(30, 40, 50)}
               for name in ("A", "B")}
    path = tmp_path / "premise.png"
    draw_plot(results, [10, 40], path)
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[1] == 840 and (image != 255).any(axis=2).mean() > 0.01


def test_head_agreement_clusters_are_on_the_defocus_scale_for_either_routing():
    """A readout-routed model's thresholds are on the readout's scale: agreement then uses equal label shares."""
    from benchmarks.defocus_head_agreement import defocus_clusters
    from daqe_tf.models import build_model

    tiny = dict(widths=[4, 4, 8, 8], encoder_blocks=[1, 1, 1], bottleneck_blocks=[1, 1, 1], decoder_blocks=[1, 0, 0],
                patch_size=32, defocus_widths=[4, 4, 4, 4], defocus_blocks=[1, 1, 1, 1], thresholds=[-0.2, -0.1])
    labels = np.linspace(0.0, 2.0, 30)
    by_defocus, how = defocus_clusters(build_model("daqe", 1, **tiny), labels)
    assert by_defocus == pytest.approx([-0.2, -0.1]) and "model" in how
    by_readout, how = defocus_clusters(build_model("daqe", 1, **tiny, routing="readout"), labels)
    assert by_readout == pytest.approx(np.quantile(labels, [1 / 3, 2 / 3]).tolist()) and "readout" in how
