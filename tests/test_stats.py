"""usnb.stats: DeLong against the literal computation, interval coverage, the paired test's error rate, the
textbook examples; usnb.claims verdicts."""
import json
import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from usnb import claims, stats
from usnb.metrics import held_out_metrics

# Hanley & McNeil (1982), Table 1: 109 CT images rated 1 (definitely normal) to 5 (definitely abnormal).
HM_NORMAL = {1: 33, 2: 6, 3: 6, 4: 11, 5: 2}  # 58 truly normal
HM_ABNORMAL = {1: 3, 2: 2, 3: 2, 4: 11, 5: 33}  # 51 truly abnormal


def _hm_data():
    y = np.r_[np.zeros(58, int), np.ones(51, int)]
    s = np.r_[np.repeat(list(HM_NORMAL), list(HM_NORMAL.values())),
              np.repeat(list(HM_ABNORMAL), list(HM_ABNORMAL.values()))].astype(float)
    return y, s


def _literal_delong(y, scores):
    """DeLong et al. (1988) as written: psi over every (positive, negative) pair, O(m n)."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])  # (K, m, n)
    aucs = psi.mean((1, 2))
    v10, v01 = psi.mean(2), psi.mean(1)  # (K, m), (K, n)
    m, n = pos.shape[1], neg.shape[1]
    return aucs, np.cov(v10) / m + np.cov(v01) / n


@pytest.mark.parametrize("seed", range(5))
def test_fast_delong_equals_the_literal_computation(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 120))
    y = (rng.random(n) < 0.4).astype(int)
    y[:2] = [0, 1]
    scores = np.stack([y * 0.8 + rng.normal(0, 1, n), np.round(y + rng.normal(0, 1, n), 1),  # ties in the second
                       rng.normal(0, 1, n)])
    aucs, cov = stats.delong(y, scores)
    ref_aucs, ref_cov = _literal_delong(y, scores)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-9)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-9)
    assert aucs[0] == pytest.approx(roc_auc_score(y, scores[0]), abs=1e-12)


def test_hanley_mcneil_textbook_example():
    """Hanley & McNeil (1982): the CT ratings give AUC 0.893 with standard error 0.032."""
    y, s = _hm_data()
    auc, _, _ = stats.auc_ci(y, s)
    assert auc == pytest.approx(0.893, abs=5e-4)
    assert stats.hanley_mcneil_se(0.893, 51, 58) == pytest.approx(0.032, abs=1e-3)  # printed to 2 digits
    # DeLong's nonparametric SE on the same ratings is of the same size (it does not assume exponential scores)
    _, cov = stats.delong(y, s)
    assert math.sqrt(cov[0, 0]) == pytest.approx(0.032, abs=0.004)


def test_wilson_interval_textbook_values():
    """Newcombe (1998), Table I: 81/263 -> [0.2553, 0.3662]; 15/148 -> [0.0624, 0.1605]."""
    np.testing.assert_allclose(stats.wilson(81 / 263, 263), [0.2553, 0.3662], atol=1e-4)
    np.testing.assert_allclose(stats.wilson(15 / 148, 148), [0.0624, 0.1605], atol=1e-4)
    assert stats.wilson(0.0, 10)[0] == pytest.approx(0.0, abs=1e-12) and stats.wilson(1.0, 10)[1] == pytest.approx(1.0)


def _binormal(rng, n_pos, n_neg, d):
    """Scores N(0, 1) for negatives, N(d, 1) for positives: true AUC = Phi(d / sqrt 2)."""
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    return y, np.r_[rng.normal(d, 1, n_pos), rng.normal(0, 1, n_neg)]


@pytest.mark.slow
def test_delong_and_bootstrap_intervals_cover_the_truth_about_95_percent():
    """500 simulated test splits (100 positives, 200 negatives, binormal scores: true AUC = Phi(d / sqrt 2)): the AUC
    interval (DeLong) and the SEN / SPE / ACC intervals (stratified BCa bootstrap at a fixed threshold) each contain
    the true value in 93-97 % of them. (Measured: 0.944, 0.950, 0.942, 0.938.)"""
    rng = np.random.default_rng(0)
    d, t, draws = 1.5, 0.75, 500
    truth = {"auc": norm.cdf(d / math.sqrt(2)), "sen": norm.sf(t - d), "spe": norm.cdf(t)}
    truth["acc"] = (100 * truth["sen"] + 200 * truth["spe"]) / 300
    hits = {k: 0 for k in truth}
    for i in range(draws):
        y, s = _binormal(rng, 100, 200, d)
        _, lo, hi = stats.auc_ci(y, s)
        hits["auc"] += lo <= truth["auc"] <= hi
        cis = stats.bootstrap_cis(y, s, t, n_boot=1000, seed=i)
        for k in ("sen", "spe", "acc"):
            hits[k] += cis[k][0] <= truth[k] <= cis[k][1]
    for k, h in hits.items():
        assert 0.93 <= h / draws <= 0.97, f"{k}: coverage {h / draws:.3f}"


def test_paired_delong_test_holds_its_false_positive_rate():
    """Two rows that are the same scores plus independent noise: DeLong's paired test rejects ~5 % of the time."""
    rng = np.random.default_rng(1)
    rejected, draws = 0, 1000
    for _ in range(draws):
        y, base = _binormal(rng, 50, 100, 1.0)
        a, b = base + rng.normal(0, 0.5, 150), base + rng.normal(0, 0.5, 150)
        rejected += stats.delong_test(y, a, b)["p"] < 0.05
    assert 0.03 <= rejected / draws <= 0.07, rejected / draws


def test_paired_test_finds_a_real_difference_and_pairing_narrows_the_interval():
    rng = np.random.default_rng(2)
    y, base = _binormal(rng, 100, 200, 1.0)
    better, worse = base + y * 0.8, base
    test = stats.delong_test(y, better, worse)
    assert test["delta"] > 0 and test["ci"][0] > 0 and test["p"] < 1e-3
    # the paired CI is narrower than treating the rows as independent (Hanley-McNeil on each)
    a, b = roc_auc_score(y, better), roc_auc_score(y, worse)
    unpaired = stats.paper_delta_ci({"auc": a}, {"auc": b}, "auc", 100, 200)
    assert test["ci"][1] - test["ci"][0] < unpaired[1] - unpaired[0]
    same = stats.delong_test(y, base, base)
    assert same == {"delta": 0.0, "ci": [0.0, 0.0], "z": 0.0, "p": 1.0}


def test_fast_average_precision_equals_sklearn_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(5, 80))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = np.round(rng.random(n), int(rng.integers(1, 3)))
        assert stats._average_precision(y[None], s[None])[0] == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_paired_bootstrap_is_exactly_zero_for_identical_rows_and_signed_otherwise():
    rng = np.random.default_rng(4)
    y, s = _binormal(rng, 40, 60, 1.0)
    same = stats.paired_bootstrap(y, s, 0.5, s, 0.5)
    assert all(v["delta"] == 0 and v["ci"] == [0.0, 0.0] for v in same.values())
    shifted = stats.paired_bootstrap(y, s, 0.0, s, 1.0)  # a lower threshold calls more clips positive
    assert shifted["sen"]["delta"] > 0 and shifted["sen"]["ci"][0] > 0
    assert shifted["spe"]["delta"] < 0 and shifted["spe"]["ci"][1] < 0


def test_bootstrap_keeps_class_counts_and_its_metrics_equal_binary_metrics():
    from usnb.metrics import binary_metrics

    y = np.r_[np.ones(7, int), np.zeros(13, int)]
    idx = stats._resamples(y, 50, seed=0)
    assert (y[idx].sum(1) == 7).all()
    s = np.random.default_rng(0).random((50, 20))
    fast = stats._threshold_metrics(y[idx], (s >= 0.5).astype(int))
    for b in (0, 7, 49):
        slow = binary_metrics(y[idx[b]], s[b], threshold=0.5)
        assert all(fast[k][b] == pytest.approx(slow[k]) for k in stats.THRESHOLD_KEYS)


def test_paired_bootstrap_of_ap():
    rng = np.random.default_rng(7)
    y, base = _binormal(rng, 60, 90, 1.0)
    same = stats.paired_bootstrap_ap(y, base, base)
    assert same == {"delta": 0.0, "ci": [0.0, 0.0]}
    better = stats.paired_bootstrap_ap(y, base + 2 * y, base)
    assert better["delta"] == pytest.approx(average_precision_score(y, base + 2 * y) - average_precision_score(y, base))
    assert better["ci"][0] > 0


def test_one_class_splits_are_refused_or_undefined():
    with pytest.raises(ValueError, match="both classes"):
        stats.auc_ci([1, 1, 1], [0.2, 0.4, 0.9])
    assert all(math.isnan(v) for ci in stats.metric_cis([0, 0, 0], [0.1, 0.2, 0.3], 0.5).values() for v in ci)


def test_paper_cis_from_the_test_size():
    cis = stats.paper_cis({"auc": 0.893, "acc": 0.8, "sen": 0.9, "spe": 0.7, "f1": 0.8}, 51, 58)
    assert cis["auc_ci"] == pytest.approx([0.893 - 1.95996 * 0.0325, 0.893 + 1.95996 * 0.0325], abs=1e-3)
    assert cis["sen_ci"] == pytest.approx(stats.wilson(0.9, 51))
    assert "f1_ci" not in cis  # F1 depends on counts a paper does not give


# ---------------------------------------------------------------- claims

def _rows(rng):
    y, base = _binormal(rng, 80, 120, 1.0)
    strong = held_out_metrics(y, base + 1.0 * y)
    weak = held_out_metrics(y, base)
    twin = held_out_metrics(y, base + rng.normal(0, 0.05, len(y)))
    return {"strong": strong, "weak": weak, "twin": twin}


def test_claim_verdicts_follow_the_interval():
    rows = _rows(np.random.default_rng(5))
    right = claims.Claim("strong", "weak", "auc", "q", "Sec. 1")
    wrong = claims.Claim("weak", "strong", "auc", "q", "Sec. 1")
    tie = claims.Claim("weak", "twin", "auc", "q", "Sec. 1")
    close = claims.Claim("weak", "twin", "auc", "q", "Sec. 1", kind="close", margin=0.05)
    missing = claims.Claim("strong", "absent", "sen", "q", "Sec. 1")
    got = {c: claims.judge(c, rows) for c in (right, wrong, tie, close, missing)}
    assert got[right]["verdict"] == claims.SUPPORTED and got[right]["ci"][0] > 0
    assert got[wrong]["verdict"] == claims.CONTRADICTED
    assert got[tie]["verdict"] == claims.UNRESOLVED
    assert got[close]["verdict"] == claims.SUPPORTED
    assert got[missing]["verdict"] == claims.NOT_RUN
    sen = claims.judge(claims.Claim("strong", "weak", "sen", "q", "s"), rows)
    assert sen["delta"] == pytest.approx(rows["strong"]["sen"] - rows["weak"]["sen"])
    assert close.text == "weak ~ twin (AUC, |delta| <= 5 points)"  # margins in points, as the deltas beside them
    table = claims.claims_markdown([got[close]])
    assert "\\|delta\\| <= 5 points" in table and claims.CLAIMS_LEGEND in table  # escaped: one cell, not three


def _seeds(claim, deltas, half):
    return [{"claim": claim.text, "delta": d, "ci": [d - half, d + half], "verdict": claims.UNRESOLVED, "level": 0.95,
             "quote": "q", "section": "s", "paper_delta": 0.02, "paper_ci": [0, 0.04]} for d in deltas]


def test_claims_pooled_over_seeds_keep_the_shared_test_splits_uncertainty():
    """Seeds average out training noise, not the sampling error of the one test split they all score."""
    claim = claims.Claim("a", "b", "auc", "q", "s")
    wide = claims.judge_over_seeds(claim, _seeds(claim, (0.04, 0.05, 0.06), 0.1))
    assert wide["delta"] == pytest.approx(0.05) and wide["seeds"] == 3
    se = math.sqrt((0.1 / 1.959964) ** 2 + 0.01 ** 2 / 3)  # sd of the three deltas = 0.01
    assert wide["ci"] == pytest.approx([0.05 - 1.959964 * se, 0.05 + 1.959964 * se], abs=1e-6)
    assert wide["verdict"] == claims.UNRESOLVED  # each seed's +-0.10 stays: three seeds cannot resolve 0.05
    narrow = claims.judge_over_seeds(claim, _seeds(claim, (0.04, 0.05, 0.06), 0.03))
    assert narrow["verdict"] == claims.SUPPORTED
    one = claims.judge_over_seeds(claim, _seeds(claim, (0.05,), 0.03))
    assert one["ci"] == pytest.approx([0.02, 0.08]) and one["verdict"] == "provisional (1 seed)"
    two = claims.judge_over_seeds(claim, _seeds(claim, (0.04, 0.06), 0.01))  # narrow, but two seeds: no verdict
    assert two["verdict"] == "provisional (2 seeds)"


def test_close_claims_use_a_90_percent_interval_and_zero_width_resolves_nothing():
    rows = _rows(np.random.default_rng(8))
    close = claims.judge(claims.Claim("weak", "twin", "auc", "q", "s", kind="close", margin=0.05), rows)
    test90 = stats.delong_test(rows["weak"]["labels"], rows["weak"]["scores"], rows["twin"]["scores"], 0.90)
    assert close["level"] == 0.90 and close["ci"] == pytest.approx(test90["ci"])
    same = claims.judge(claims.Claim("weak", "weak", "auc", "q", "s", kind="close", margin=0.05), rows)
    assert same["ci"] == [0.0, 0.0] and same["verdict"] == claims.UNRESOLVED


def test_k_fold_rows_pool_out_of_fold_predictions_and_claims_use_each_folds_threshold():
    from usnb.metrics import binary_metrics, pooled_metrics

    rng = np.random.default_rng(9)
    folds = {"ssl": [], "sup": []}
    for k in range(3):
        y, base = _binormal(rng, 20, 25, 1.0)
        folds["ssl"].append(held_out_metrics(y, base + 1.5 * y + k, y, base + 1.5 * y + k))  # each fold shifted by k
        folds["sup"].append(held_out_metrics(y, base, y, base))
    pooled = {n: pooled_metrics(f) for n, f in folds.items()}
    p = pooled["ssl"]
    assert len(p["labels"]) == 135 and p["threshold_on"] == "val"
    # counted as each fold called its clips: the same confusion as summing the folds' own
    calls = np.concatenate([f["scores"] >= f["threshold"] for f in folds["ssl"]]).astype(float)
    assert p["sen"] == pytest.approx(binary_metrics(p["labels"], calls, 0.5)["sen"])
    assert p["auc"] == pytest.approx(roc_auc_score(p["labels"], p["scores"]))
    assert p["auc_ci"][0] < p["auc"] < p["auc_ci"][1] and p["acc_fold_sd"] >= 0
    verdict = claims.judge(claims.Claim("ssl", "sup", "sen", "q", "s"), pooled)
    assert verdict["delta"] == pytest.approx(pooled["ssl"]["sen"] - pooled["sup"]["sen"])


def test_every_recipes_claims_are_judged_on_its_rows():
    from usnb.recipes import lung_ssl as S

    rng = np.random.default_rng(10)
    y, base = _binormal(rng, 50, 50, 1.0)
    names = {n for c in S.CLAIMS for n in (c.better, c.worse)}
    rows = {n: held_out_metrics(y, base + rng.normal(0, 0.3, 100)) for n in names}
    got = claims.judge_all(S, rows, spread={c.text: 0.01 for c in S.CLAIMS})
    assert len(got) == len(S.CLAIMS) and all(g["verdict"] != claims.NOT_RUN for g in got)
    assert {g["verdict"] for g in claims.judge_all(S, rows, spread=None)} == {claims.PROVISIONAL}
    fs = next(g for g in got if g["worse"] == "Fully supervised" and g["metric"] == "acc")
    assert fs["paper_delta"] == pytest.approx(0.84 - 0.82)  # Sec. 4.2's fully supervised number, not a table's


def test_claims_need_the_same_test_clips():
    rng = np.random.default_rng(6)
    rows = _rows(rng)
    other = dict(rows["weak"], labels=rows["weak"]["labels"][::-1].copy())
    with pytest.raises(ValueError, match="different test clips"):
        claims.judge(claims.Claim("strong", "other", "auc", "q", "s"), {**rows, "other": other})


def test_a_class_of_one_clip_still_gets_intervals():
    cis = stats.bootstrap_cis([1, 0, 0, 0], [0.9, 0.2, 0.6, 0.1], 0.5)
    assert cis["sen"] == [1.0, 1.0] and 0 <= cis["spe"][0] <= cis["spe"][1] <= 1


def test_a_one_class_validation_split_moves_the_threshold_to_test_with_a_warning():
    y, s = np.array([0, 1, 0, 1, 1]), np.array([0.1, 0.8, 0.3, 0.6, 0.9])
    with pytest.warns(UserWarning, match="one class only"):
        m = held_out_metrics(y, s, np.array([0, 0]), np.array([0.2, 0.4]))
    assert m["threshold_on"] == "test" and held_out_metrics(y, s, y, s)["threshold_on"] == "val"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert held_out_metrics(y, s)["threshold_on"] == "test"  # no validation split at all: no warning


def test_paired_against_tables_each_method_against_the_reference_on_the_same_clips():
    from usnb.stats import delong_test, paired_against

    y = np.array([0, 0, 0, 1, 1, 1])
    ours = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])  # AUC 1
    other = np.array([0.1, 0.6, 0.3, 0.5, 0.8, 0.2])
    table = paired_against(y, ours, {"R3D": other, "same": ours}, "CLMAN").splitlines()
    assert table[0].startswith("| method | AUC | AUC - CLMAN")
    delta = delong_test(y, other, ours)["delta"]
    assert table[2].startswith(f"| R3D | {float(np.mean([[o > n for n in other[:3]] for o in other[3:]])):.3f} | "
                               f"{delta * 100:.1f}")
    assert table[3] == "| same | 1.000 | 0.0 [0.0, 0.0] | 1.000 |"


def test_a_single_runs_verdict_holds_the_seed_spread_or_is_provisional():
    """One seed: the interval adds the delta's known seed sd (se^2 = se_test^2 + sd^2); unknown: provisional."""
    rows = _rows(np.random.default_rng(5))
    claim = claims.Claim("strong", "weak", "auc", "q", "Sec. 1")
    test_only = claims.judge(claim, rows)
    assert test_only["verdict"] == claims.SUPPORTED and test_only["ci"] == test_only["test_ci"]
    se_test = (test_only["ci"][1] - test_only["ci"][0]) / (2 * 1.959964)
    noisy = claims.judge(claim, rows, seed_sd=0.2)
    half = (noisy["ci"][1] - noisy["ci"][0]) / 2
    assert half == pytest.approx(1.959964 * math.hypot(se_test, 0.2), rel=1e-5)
    assert noisy["verdict"] == claims.UNRESOLVED and noisy["test_ci"] == test_only["ci"]  # the seeds' spread swamps it
    unknown = claims.judge(claim, rows, seed_sd=None)
    assert unknown["verdict"] == claims.PROVISIONAL and unknown["ci"] == test_only["ci"]
    # pooled over seeds, the per-seed test intervals are used (the seed spread is counted once, from the seeds)
    pooled = claims.judge_over_seeds(claim, [noisy, noisy, noisy])
    assert pooled["ci"] == pytest.approx(test_only["ci"], abs=1e-3)


def test_a_claim_resting_on_a_row_at_chance_says_so(tmp_path):
    from usnb.metrics import metrics_table

    rng = np.random.default_rng(7)
    y, base = _binormal(rng, 30, 30, 1.5)
    rows = {"good": held_out_metrics(y, base), "coin": held_out_metrics(y, rng.random(60))}
    assert rows["coin"]["auc_ci"][0] < 0.5 < rows["good"]["auc_ci"][0]
    got = claims.judge(claims.Claim("good", "coin", "auc", "q", "s"), rows)
    assert got["chance_rows"] == ["coin"]
    assert "rests on a row not above chance (AUC CI reaches 0.5): coin" in claims.claims_table([got])[0][-1]
    pooled = claims.judge_over_seeds(claims.Claim("good", "coin", "auc", "q", "s"), [got, got, got])
    assert pooled["chance_rows"] == {"coin": 3} and "coin (3 of 3 seeds)" in claims.claims_table([pooled])[0][-1]
    table = metrics_table(rows)
    assert [c[0] for c in table.cells()] == ["good", "coin (not above chance)"] and "reaches 0.5" in table.to_markdown()


def test_the_recorded_seed_spread_applies_to_the_default_setting_only(tmp_path, monkeypatch):
    from usnb.recipes import kganet as K

    text = K.CLAIMS[0].text
    recorded = {"papers": {"kganet": {"claims": {text: {"sd": 0.03}}, "measured": "sd over seeds 0, 1, 2"}}}
    (tmp_path / "spread.json").write_text(json.dumps(recorded))
    monkeypatch.setattr(claims, "SEED_SPREAD", tmp_path / "spread.json")
    assert claims.seed_spread("kganet", default_setting=False) is None
    assert claims.seed_spread("mvcc", default_setting=True) is None  # nothing recorded for it
    spread = claims.seed_spread("kganet", default_setting=True)
    assert spread == {text: 0.03}
    rows = _rows(np.random.default_rng(5))
    command = claims.seeds_command("kganet", "small", "folders", "/data/my videos")
    assert command == "usnb run kganet --profile small --seeds 0 1 2 --dataset folders --data-dir '/data/my videos' " \
                      "--out runs/kganet_seeds"
    assert "provisional" in claims.claims_note(rows, None, command) and command in claims.claims_note(rows, None, command)
    assert "sd over seeds 0, 1, 2" in claims.claims_note(rows, spread, "-")
    assert "clip level" in claims.claims_note(rows, spread, "-")


def test_the_committed_seed_spread_covers_every_papers_claims():
    """usnb/seed_spread.json (benchmarks/seed_spread.py over a batch of the default setting) holds an sd for every
    claim whose two rows the default notebooks train."""
    from usnb.recipes import recipe

    recorded = json.loads(claims.SEED_SPREAD.read_text())
    assert set(recorded["papers"]) == {"mvcc", "clman", "kganet", "lung_ssl"}
    assert all("seeds" in entry["measured"] for entry in recorded["papers"].values())
    for paper, entry in recorded["papers"].items():
        texts = {c.text for c in recipe(paper).CLAIMS}
        assert entry["claims"] and set(entry["claims"]) <= texts, paper
        assert all(v["sd"] >= 0 and len(v["deltas"]) >= 3 for v in entry["claims"].values()), paper


def test_interval_text_in_points_never_writes_minus_zero():
    from usnb.stats import interval_text

    assert interval_text(0.912, (0.88, 0.94)) == "91.2 [88.0, 94.0]"
    assert interval_text(-0.0004, (-0.0301, 0.0204)) == "0.0 [-3.0, 2.0]"
    assert interval_text(-0.0004, None) == "0.0" and interval_text(-0.0006, None) == "-0.1"
