"""What the papers report, as data: their tables (`TABLES`), their claims about their own rows (quotes verbatim from
the papers, with their section) and the sizes of their test splits. Each recipe exposes its paper's as `PAPER_TABLES`,
`CLAIMS` and `PAPER_TEST`; the batch report reads the tables, `usnb.claims` judges the claims.

Where a paper states no class balance for its test split, the balance was derived from the paper's own table cells
(a fixed test set pins the counts: e.g. KGA-Net SEN 23/26, SPE 12/13, ACC 35/39); the derivation is written beside
each size. Read the papers' intervals computed from these sizes as approximate.
"""
from .claims import Claim

# ---------------------------------------------------------------- the papers' tables

# CLMAN (percent in the paper, fractions here), on its private test set: not our data.
_KEYS = ("acc", "ap", "sen", "spe", "f1", "auc")


def _row(*values: float) -> dict:
    return {k: round(v / 100, 4) for k, v in zip(_KEYS, values)}


_CLMAN_TABLE1 = {  # Table 1: the deformed feature extractor, no contrastive pretraining
    "ResNet18 (vanilla)": _row(70.09, 77.68, 75.00, 68.67, 78.08, 71.75),
    "ResNet18 + GN": _row(74.77, 77.01, 74.29, 75.00, 80.00, 74.93),
    "ResNet18 + NL": _row(80.37, 84.08, 78.05, 81.82, 83.72, 83.01),
    "ResNet18 + GN + NL (ours)": _row(82.24, 81.16, 82.05, 82.35, 85.50, 84.85),
}
_CLMAN_TABLE2 = {  # Table 2: contrastive pretraining
    "Without CL Guided": _row(82.24, 81.16, 82.05, 82.35, 85.50, 84.85),
    "With CL (ours)": _row(88.79, 92.78, 94.44, 85.92, 91.04, 92.64),
}
_CLMAN_TABLE3 = {  # Table 3: the frame aggregator
    "With External Attention": _row(79.44, 81.39, 76.19, 81.54, 82.81, 79.98),
    "With Self-attention": _row(80.37, 77.85, 79.49, 80.88, 83.97, 78.50),
    "With Efficient Multi-head Self-attention": _row(80.37, 78.51, 81.08, 80.00, 84.21, 77.49),
    "With LSTM": _row(83.18, 77.91, 96.43, 78.48, 87.32, 79.47),
    "With Average": _row(86.92, 85.26, 96.88, 82.67, 89.86, 87.48),
    "With Max-pooling": _row(85.05, 88.12, 80.43, 88.52, 87.10, 87.52),
    "With Multi-meta Attn (ours)": _row(88.79, 92.78, 94.44, 85.92, 91.04, 92.64),
}
_CLMAN_TABLE4 = {  # Table 4: video classifiers
    "R3D": _row(75.70, 80.03, 82.14, 73.42, 81.69, 77.56),
    "TimeSformer": _row(77.57, 71.34, 77.78, 77.46, 82.09, 72.08),
    "MC3": _row(77.57, 80.83, 81.25, 76.00, 82.61, 78.86),
    "P3D": _row(80.37, 81.33, 89.66, 76.92, 85.11, 81.28),
    "R(2+1)D": _row(82.24, 87.36, 90.32, 78.95, 86.33, 84.85),
    "TIN Res34": _row(84.48, 86.85, 82.33, 86.35, 86.87, 86.79),
    "TIN Res50": _row(85.05, 85.53, 88.94, 83.10, 88.06, 86.66),
    "TIN Res18": _row(85.24, 89.52, 82.50, 87.11, 87.52, 87.30),
    "TSM": _row(86.92, 89.72, 91.67, 84.51, 89.55, 90.22),
    "CLMA-Net (ours)": _row(88.79, 92.78, 94.44, 85.92, 91.04, 92.64),
}


# MVCC Table 1 (mean of 4 seeds; percent there, fractions here). The copy of the paper we have lost most
# cells of the table in extraction: only the numbers legible in it (or quoted in the text, Baseline ACC) are here;
# the others show as nan, not guessed. The paper reports no AUC.
_MVCC_TABLE1 = {
    "Baseline": {"acc": 0.8915, "sen": 0.7384},
    "+SCL": {"sen": 0.7354, "f1": 0.7952},
    "+C-SCL": {"sen": 0.7656, "f1": 0.8059},
    "USCL": {"sen": 0.5127},
    "CVRL": {"acc": 0.7921, "sen": 0.4389, "spe": 0.9207, "pre": 0.6838, "f1": 0.5214},
    "MVCC-Patch": {"f1": 0.8041},
    "MVCC-Frame": {"f1": 0.8054},
    "MVCC": {"acc": 0.9064, "sen": 0.7602, "spe": 0.9595, "pre": 0.8721, "f1": 0.8121},
}

# KGA-Net (percent in the paper, fractions here), on BUSV's official test split: not our data.
_KGA_TABLE1 = {  # Table 1: comparison with video models, Youden thresholds
    "I3D": {"auc": 0.8831, "acc": 0.8158, "sen": 0.8400, "spe": 0.7692},
    "SlowFast": {"auc": 0.8254, "acc": 0.7949, "sen": 0.7692, "spe": 0.8462},
    "R(2+1)D": {"auc": 0.8646, "acc": 0.8158, "sen": 0.8400, "spe": 0.7692},
    "CSN": {"auc": 0.8338, "acc": 0.8158, "sen": 0.8400, "spe": 0.7692},
    "MViT": {"auc": 0.9053, "acc": 0.8205, "sen": 0.8077, "spe": 0.8462},
    "KGA-Net": {"auc": 0.9467, "acc": 0.8974, "sen": 0.8846, "spe": 0.9231},
}
_KGA_TABLE2 = {  # Table 2: ablations, Youden thresholds
    "w/o image guidance": {"auc": 0.8521, "acc": 0.7692, "sen": 0.7308, "spe": 0.8462},
    "w/o coherence loss & attention": {"auc": 0.8817, "acc": 0.7436, "sen": 0.6154, "spe": 1.0},
    "w/o coherence loss": {"auc": 0.9290, "acc": 0.8718, "sen": 0.8077, "spe": 1.0},
    "KGA-Net": {"auc": 0.9467, "acc": 0.8974, "sen": 0.8846, "spe": 0.9231},
}

# The lung paper's Table 3 (their lung ultrasound data, not ours): fractions.
_LUNG_TABLE3 = {
    "BYOL: SSL feature extractor": {"acc": 0.78, "sen": 0.69, "spe": 0.86, "auc": 0.86},
    "BYOL: SSL fine-tuned": {"acc": 0.84, "sen": 0.74, "spe": 0.92, "auc": 0.91},
    "SimCLR: SSL feature extractor": {"acc": 0.76, "sen": 0.55, "spe": 0.94, "auc": 0.87},
    "SimCLR: SSL fine-tuned": {"acc": 0.79, "sen": 0.68, "spe": 0.89, "auc": 0.89},
}
LUNG_TRAINABLE = {"SSL feature extractor": 38, "SSL fine-tuned": 133_880}  # Table 3: "out of 133,880 total"
# Sec. 4.2 (text; Fig. 3 is a plot): at 100 % labels fully supervised vs SSL: accuracy 0.82 vs 0.84, AUC 0.91 vs 0.92;
# SSL without the temporal augmentations: AUC 0.02 lower.
LUNG_FIG3 = {"Fully supervised @100%": {"acc": 0.82, "auc": 0.91}, "SSL @100%": {"acc": 0.84, "auc": 0.92},
             "AUC drop without temporal augmentation": 0.02}

TABLES = {  # paper -> {table: {row: {metric: fraction}}}, the rows as each paper names them
    "clman": {"Table 1": _CLMAN_TABLE1, "Table 2": _CLMAN_TABLE2, "Table 3": _CLMAN_TABLE3, "Table 4": _CLMAN_TABLE4},
    "mvcc": {"Table 1": _MVCC_TABLE1},
    "kganet": {"Table 1": _KGA_TABLE1, "Table 2": _KGA_TABLE2},
    "lung_ssl": {"Table 3": _LUNG_TABLE3},
}

# ---------------------------------------------------------------- the papers' claims

# Each Claim: the paper says `better` scores higher than `worse` on `metric` (kind "greater"), or the two rows score
# about the same within `margin` (kind "close"). Metrics are fractions (0.02 = 2 percentage points). Quotes are
# verbatim from the papers (each notebook's first cell cites its paper with a DOI / arXiv link); "..." marks a cut
# (also used where the markdown breaks a sentence across a table or page).

_MVCC_SCL = ("The SCL helped to further increase the accuracy and specificity (row 2, Table. 1), which may result "
             "from its ability to constraint representations in the embedding space.")
_MVCC_SCL_SEN = ("However, its sensitivity score is even lower (73.54%), indicating a strong bias to the dominant "
                 "negative class.")
_MVCC_CSCL_SEN = ("the proposed C-SCL increases the sensitivity by 3.02%, which is critical for identifying malignant "
                  "nodules.")
_MVCC_CSCL_F1 = "As a result, the Baseline+C-SCL combination produced the highest F1-score (80.59%)."
_MVCC_PATCH = ("Compared with natural video dataset k400 [9] initialization (row 3) the patch-level masking approach "
               "obtained higher accuracy, specificity and precision")
_MVCC_FRAME = ("It is interesting to see the frame-level masking strategy alone does not lead to performance gain "
               "(compare row 7 to row 3).")
_MVCC_DUAL = ("the proposed dual-level masking strategy utilizes both spatial and temporal information and scored the "
              "highest accuracy (90.64%) and F1-score (81.21%) among all competing methods.")
_MVCC_SEC = "Sec. 3 (Quantitative Analysis), Table 1"

_CLMAN_GN = ("Compared with the plain ResNet-18 architecture, the feature extraction module with group norm has 4.68%, "
             "6.33%, 1.92% and 3.18% improvement in accuracy, specificity,  $F_1$ , and AUC, respectively.")
_CLMAN_NL = ("the feature extraction module with the non-local module shows a steady increase in all six metrics ... "
             "and 11.26% increase in AUC.")
_CLMAN_GNNL = ("The feature extraction module with the group norm and non-local module achieves the average ... best "
               "performance, with accuracy of 82.24%, AP of 81.16%, sensitivity of 82.08%, specificity of 82.35%,  "
               "$F_1$  of 85.50%, and AUC of 84.85%.")
_CLMAN_CL = ("The experiments show that the performance of the CLMAN decreases when the contrast learning strategy is "
             "removed. Specifically, accuracy, AP, sensitivity, specificity,  $F_1$ , and AUC decreased by 6.55%, "
             "11.62%, 12.39%, 3.57%, 5.54%, and 7.79%, respectively.")
_CLMAN_MMA = ("The proposed multi-meta attention scheme shows a 1.87% improvement in accuracy, 4.66% improvement in AP, "
              "3.94% improvement in  $F_1$ , and 5.12% improvement in AUC, with a stronger comprehensive capability.")
_CLMAN_POOL = ("the simple average pooling and maximum pooling methods achieved the best in terms of sensitivity or "
               "specificity, but the other metrics were not satisfactory.")
_CLMAN_LSTM = ("According to Table 3 the long sequence feature capture capability of LSTM is not fully applicable to "
               "ultrasound video imaging aggregation.")
_CLMAN_ATT = ("The proposed classic attention modules that have often been effective in the past do not seem to be up "
              "to our video task.")

_KGA_IMG = ("Without the image dataset, we generate the feature centers from the video frames. As a result, the "
            "performance significantly drops due to the decrease in dataset scale.")
_KGA_MODULES = ("We train a KGA-Net without the coherence loss in the third row of Table 2. In the second row, we further "
                "replace the feature attention module with feature averaging of video frames. It can be seen that both "
                "of these two modules contribute to the overall performance according to AUC and ACC.")
_KGA_SEN = ("these two models without coherence loss obtain very low sensitivity and high specificity, which means the "
            "model predictions are imbalanced and intend to make benign predictions.")

_LUNG_100 = ("When the amount of labeled training data is sufficient, the baseline “Fully-Supervised” model shows "
             "comparable performance to the SSL-based models, and the effect of pre-training with unlabeled data is "
             "diminished (0.82 vs 0.84 accuracy, 0.91 vs 0.92 AUC).")
_LUNG_LOW = ("when the proportion of labeled training data falls below 30% of the initial training set size, the "
             "accuracy and AUC of the baseline “Fully-Supervised” model decreases dramatically. In contrast, the "
             "SSL-based models maintain consistent accuracy and AUC throughout ... the low data regime")
_LUNG_FS_DROP = ("we observe that when the proportion of labeled training data falls below 30% of the initial training "
                 "set size, the accuracy and AUC of the baseline “Fully-Supervised” model decreases dramatically.")
_LUNG_STEADY = ("the SSL-based models maintain consistent accuracy and AUC throughout ... the low data regime, including "
                "training with as little as 5% of the annotated dataset.")
_LUNG_SIMCLR = ("We observe that both algorithms are similar (0.91 vs 0.89 AUC, 0.84 vs 0.79 accuracy) in performance.")
_LUNG_TEMP = "We also notice that SSL training without temporal augmentations leads to 0.02 decrease in AUC."

CLAIMS = {
    "mvcc": [
        # rows 1-3 (no masked pretraining): contrastive losses
        Claim(better="+C-SCL", worse="+SCL", metric="sen", quote=_MVCC_CSCL_SEN, section=_MVCC_SEC),
        Claim(better="+SCL", worse="Baseline", metric="acc", quote=_MVCC_SCL, section=_MVCC_SEC),
        Claim(better="Baseline", worse="+SCL", metric="sen", quote=_MVCC_SCL_SEN, section=_MVCC_SEC),
        Claim(better="+C-SCL", worse="Baseline", metric="f1", quote=_MVCC_CSCL_F1, section=_MVCC_SEC),
        Claim(better="+C-SCL", worse="+SCL", metric="f1", quote=_MVCC_CSCL_F1, section=_MVCC_SEC),
        # rows 6-8: masking strategies (row 3 = K400 init + C-SCL)
        Claim(better="MVCC-Patch", worse="+C-SCL", metric="acc", quote=_MVCC_PATCH, section=_MVCC_SEC),
        # "does not lead to performance gain": no gain, not a loss -> closest form is "about equal" (F1 80.54 vs 80.59)
        Claim(better="MVCC-Frame", worse="+C-SCL", metric="f1", quote=_MVCC_FRAME, section=_MVCC_SEC,
              kind="close", margin=0.02),
        Claim(better="MVCC", worse="MVCC-Patch", metric="f1", quote=_MVCC_DUAL, section=_MVCC_SEC),
        Claim(better="MVCC", worse="MVCC-Frame", metric="f1", quote=_MVCC_DUAL, section=_MVCC_SEC),
        Claim(better="MVCC", worse="MVCC-Patch", metric="acc", quote=_MVCC_DUAL, section=_MVCC_SEC),
        Claim(better="MVCC", worse="MVCC-Frame", metric="acc", quote=_MVCC_DUAL, section=_MVCC_SEC),
        Claim(better="MVCC", worse="+C-SCL", metric="f1", quote=_MVCC_DUAL, section=_MVCC_SEC),
    ],
    "clman": [
        # Table 1: deformed feature extraction module (no CL in any of the four)
        Claim(better="ResNet18 + GN", worse="ResNet18 (vanilla)", metric="auc", quote=_CLMAN_GN,
              section="Sec. 4.4.1, Table 1"),
        Claim(better="ResNet18 + NL", worse="ResNet18 (vanilla)", metric="auc", quote=_CLMAN_NL,
              section="Sec. 4.4.1, Table 1"),
        Claim(better="ResNet18 + GN + NL (ours)", worse="ResNet18 (vanilla)", metric="auc", quote=_CLMAN_GNNL,
              section="Sec. 4.4.1, Table 1"),
        Claim(better="ResNet18 + GN + NL (ours)", worse="ResNet18 + NL", metric="auc", quote=_CLMAN_GNNL,
              section="Sec. 4.4.1, Table 1"),
        # Table 2: contrastive pretraining, every metric
        *[Claim(better="With CL (ours)", worse="Without CL Guided", metric=m, quote=_CLMAN_CL,
                section="Sec. 4.4.2, Table 2") for m in ("acc", "ap", "sen", "spe", "f1", "auc")],
        # Table 3: temporal aggregation (1.87 % ACC is vs Average; 4.66 % AP, 3.94 % F1, 5.12 % AUC are vs Max-pooling)
        Claim(better="With Multi-meta Attn (ours)", worse="With Average", metric="auc", quote=_CLMAN_MMA,
              section="Sec. 4.4.3, Table 3"),
        Claim(better="With Multi-meta Attn (ours)", worse="With Max-pooling", metric="auc", quote=_CLMAN_MMA,
              section="Sec. 4.4.3, Table 3"),
        Claim(better="With Multi-meta Attn (ours)", worse="With LSTM", metric="auc", quote=_CLMAN_LSTM,
              section="Sec. 4.4.3, Table 3"),
        Claim(better="With Multi-meta Attn (ours)", worse="With Self-attention", metric="auc", quote=_CLMAN_ATT,
              section="Sec. 4.4.3, Table 3"),
        # the paper's own concession: the pooling baselines win on SEN (Average) and SPE (Max-pooling)
        Claim(better="With Average", worse="With Multi-meta Attn (ours)", metric="sen", quote=_CLMAN_POOL,
              section="Sec. 4.4.3, Table 3"),
        Claim(better="With Max-pooling", worse="With Multi-meta Attn (ours)", metric="spe", quote=_CLMAN_POOL,
              section="Sec. 4.4.3, Table 3"),
    ],
    "kganet": [
        Claim(better="KGA-Net", worse="w/o image guidance", metric="auc", quote=_KGA_IMG, section="Sec. 4.3, Table 2"),
        Claim(better="KGA-Net", worse="w/o coherence loss", metric="auc", quote=_KGA_MODULES,
              section="Sec. 4.3, Table 2"),
        Claim(better="KGA-Net", worse="w/o coherence loss", metric="acc", quote=_KGA_MODULES,
              section="Sec. 4.3, Table 2"),
        Claim(better="w/o coherence loss", worse="w/o coherence loss & attention", metric="auc", quote=_KGA_MODULES,
              section="Sec. 4.3, Table 2"),
        Claim(better="w/o coherence loss", worse="w/o coherence loss & attention", metric="acc", quote=_KGA_MODULES,
              section="Sec. 4.3, Table 2"),
        Claim(better="KGA-Net", worse="w/o coherence loss & attention", metric="auc", quote=_KGA_MODULES,
              section="Sec. 4.3, Table 2"),
        Claim(better="KGA-Net", worse="w/o coherence loss", metric="sen", quote=_KGA_SEN, section="Sec. 4.3, Table 2"),
        Claim(better="KGA-Net", worse="w/o coherence loss & attention", metric="sen", quote=_KGA_SEN,
              section="Sec. 4.3, Table 2"),
    ],
    "lung_ssl": [
        # 100 % labels: comparable (the 0.84 accuracy is Table 3's BYOL fine-tuned row)
        Claim(better="BYOL: SSL fine-tuned", worse="Fully supervised", metric="auc", quote=_LUNG_100,
              section="Sec. 4.2, Fig. 3", kind="close", margin=0.02),
        Claim(better="BYOL: SSL fine-tuned", worse="Fully supervised", metric="acc", quote=_LUNG_100,
              section="Sec. 4.2, Fig. 3", kind="close", margin=0.02),
        # low-label regime: "SSL-based models" = both the feature extractor and the fine-tuned model
        Claim(better="BYOL: SSL feature extractor @10%", worse="Fully supervised @10%", metric="auc", quote=_LUNG_LOW,
              section="Sec. 4.2, Fig. 3"),
        Claim(better="BYOL: SSL fine-tuned @10%", worse="Fully supervised @10%", metric="auc", quote=_LUNG_LOW,
              section="Sec. 4.2, Fig. 3"),
        Claim(better="BYOL: SSL feature extractor @5%", worse="Fully supervised @5%", metric="auc", quote=_LUNG_LOW,
              section="Sec. 4.2, Fig. 3"),
        Claim(better="BYOL: SSL fine-tuned @5%", worse="Fully supervised @5%", metric="auc", quote=_LUNG_LOW,
              section="Sec. 4.2, Fig. 3"),
        Claim(better="Fully supervised", worse="Fully supervised @10%", metric="auc", quote=_LUNG_FS_DROP,
              section="Sec. 4.2, Fig. 3"),
        Claim(better="Fully supervised", worse="Fully supervised @5%", metric="auc", quote=_LUNG_FS_DROP,
              section="Sec. 4.2, Fig. 3"),
        # "consistent ... as little as 5%": the paper gives no number; margin is the default 0.02
        Claim(better="BYOL: SSL feature extractor", worse="BYOL: SSL feature extractor @5%", metric="auc",
              quote=_LUNG_STEADY, section="Sec. 4.2, Fig. 3", kind="close", margin=0.02),
        Claim(better="BYOL: SSL fine-tuned", worse="BYOL: SSL fine-tuned @5%", metric="auc",
              quote=_LUNG_STEADY, section="Sec. 4.2, Fig. 3", kind="close", margin=0.02),
        # SimCLR vs BYOL: 0.91 vs 0.89 AUC and 0.84 vs 0.79 ACC are the fine-tuned rows of Table 3
        Claim(better="BYOL: SSL fine-tuned", worse="SimCLR: SSL fine-tuned", metric="auc", quote=_LUNG_SIMCLR,
              section="Sec. 4.3, Table 3", kind="close", margin=0.02),
        Claim(better="BYOL: SSL fine-tuned", worse="SimCLR: SSL fine-tuned", metric="acc", quote=_LUNG_SIMCLR,
              section="Sec. 4.3, Table 3", kind="close", margin=0.05),
        # the paper does not say which model the 0.02 was measured on; the frozen-encoder probe is the row we train
        Claim(better="BYOL: SSL feature extractor", worse="BYOL w/o temporal aug: SSL feature extractor",
              metric="auc", quote=_LUNG_TEMP, section="Sec. 4.2"),
    ],
}

TEST_SIZES = {  # paper -> (n_pos, n_neg, source: quote or derivation); positive = malignant / consolidation present
    "mvcc": (206, 566,
             "772 test videos: 'The dataset was randomly split into 2697, 385 and 772 videos for training, validation "
             "and independent testing.' Balance not stated (only 'the benign-to-malignant ratio is approximately 3 to "
             "1' overall). Derived: with a fixed test set, mean ACC = (n_pos*mean SEN + n_neg*mean SPE)/772 holds "
             "exactly over the 4 seeds, so Table 1 pins n_pos: the MVCC row (90.64/76.02/95.95) and the CVRL row "
             "(79.21/43.89/92.07) each admit only n_pos = 206 within rounding (206:566 = 1:2.75, fits '~3 to 1'); "
             "check: MVCC PRE ~ 0.7602*206/(0.7602*206 + 0.0405*566) = 87.2 % vs 87.21 % reported."),
    "clman": (63, 44,
              "107 test sequences: 'A total of 107 of these sequences are randomly selected as the test set' (of 268: "
              "'152 sequences are malignant and 116 sequences are benign'); test balance not stated. Derived from "
              "Tables 1-4: all 17 rows with integer-consistent counts fit one test set of 63 malignant / 44 benign "
              "(63/107 = 59 %, as in the whole set's 57 %), and no constant balance fits if SENS/SPEC are read as "
              "recalls. The fit is exact for every row only if the paper's 'Sens' column is the NPV (benign "
              "precision) and 'Spec' the PPV (malignant precision), with F1 and ACC standard (malignant positive). "
              "E.g. CLMAN: TP 61, FN 2, FP 10, TN 34 -> ACC 95/107 = 88.79, F1 122/134 = 91.04, 'Sens' 34/36 = "
              "94.44, 'Spec' 61/71 = 85.92. The 3 TIN rows of Table 4 fit no integer counts."),
    "kganet": (26, 13,
               "'For the BUSV dataset, we use the official data split in [15]' (size not stated; BUSV overall 113 "
               "malignant / 75 benign). Derived: every Table 2 row and KGA-Net, SlowFast and MViT in Table 1 fit "
               "exactly 26 malignant / 13 benign = 39 videos and no other n <= 77 (KGA-Net: SEN 23/26 = 88.46, SPE "
               "12/13 = 92.31, ACC 35/39 = 89.74). I3D, R(2+1)D and CSN in Table 1 fit 25 / 13 = 38 "
               "(SEN 21/25 = 84.00, SPE 10/13 = 76.92, ACC 31/38 = 81.58)."),
    "lung_ssl": (115, 138,
                 "253 test videos: Table 1 'Videos labeled with lung consolidation (Train/val/test set) 1,669 "
                 "(1,296/120/253)'; balance not stated. Derived (approximately) from Table 3: with ACC/SEN/SPE "
                 "rounded to 2 decimals, the 4 rows are jointly consistent only for n_pos = 113..117 consolidation-"
                 "present videos (n_neg 140..136); 115 / 138 is the middle (e.g. BYOL fine-tuned: 85/115 = 0.74, "
                 "127/138 = 0.92, 212/253 = 0.84). An assumption within that range, not a stated figure."),
}

# A column that is not the ratio its name says: CLMAN's "Sens" / "Spec" fit its counts only as the benign and malignant
# predictive values (34/36 and 61/71 for CLMAN, see TEST_SIZES), so their intervals take those cases as n.
COLUMN_CASES = {"clman": {"sen": 36, "spe": 71}}


def paper_test(paper: str) -> tuple[int, int, dict | None]:
    """(positives, negatives, cases per column where they differ) of a paper's test split, for `usnb.stats.paper_cis`."""
    n_pos, n_neg, _ = TEST_SIZES[paper]
    return n_pos, n_neg, COLUMN_CASES.get(paper)
