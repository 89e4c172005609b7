"""A small, learnable ISIC 2024 look-alike for smoke runs, in the competition's exact layout.

What makes it learnable, and worth the real pipeline's features:
- Each patient has their own skin tone and typical lesion size; a lesion is suspicious when it
  is larger or darker *than that patient's other lesions* (the "ugly duckling" signal), so
  per-patient normalised features beat raw ones.
- Border irregularity and colour variegation interact non-linearly.
- An asymmetric-blotch pattern is drawn into the JPEG and shows in the metadata only through a
  noisy proxy, so an image model adds information to the GBM.
- The train-only diagnosis columns are written from the label (as in the real data), so using
  them as features would leak, and the leakage test can tell.
The true probability of each lesion goes to `smoke-oracle.csv`, so the best achievable score is
known, with the disc that holds each lesion (so a heat map can be checked against it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shared.datasets import isic2024 as isic
from shared.images import write_hdf5_jpegs
from shared.synthetic import ensure_generated

LOCATIONS = {
    "head/neck": [("Head & Neck", "Head & Neck")],
    "upper extremity": [("Left Arm - Upper", "Left Arm"), ("Right Arm - Lower", "Right Arm")],
    "lower extremity": [("Left Leg - Lower", "Left Leg"), ("Right Leg - Upper", "Right Leg")],
    "anterior torso": [("Torso Front Top Half", "Torso Front")],
    "posterior torso": [
        ("Torso Back Top Third", "Torso Back"),
        ("Torso Back Middle Third", "Torso Back"),
    ],
}
SITE_XYZ = {
    "head/neck": (0, 1500, 0),
    "upper extremity": (300, 1100, 0),
    "lower extremity": (150, 400, 0),
    "anterior torso": (0, 1200, 100),
    "posterior torso": (0, 1200, -100),
}
ATTRIBUTIONS = [
    "Memorial Sloan Kettering Cancer Center",
    "Department of Dermatology, Hospital Clínic de Barcelona",
    "University Hospital of Basel",
    "Frazer Institute, The University of Queensland",
]


GENERATOR_VERSION = 2  # 2: smoke-oracle.csv holds each lesion's disc


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def generate_metadata(
    n_patients: int, mean_lesions: float, positive_rate: float, seed: int
) -> pd.DataFrame:
    """One row per lesion with the competition's columns plus hidden latents (prefixed `_`)."""
    rng = np.random.default_rng(seed)
    counts = np.clip(rng.poisson(mean_lesions, n_patients), 3, None)
    pid = np.repeat(np.arange(n_patients), counts)
    n = pid.size

    # Patient level: age, sex, skin tone and typical lesion size differ a lot between patients.
    age = rng.choice(np.arange(20, 90, 5), n_patients).astype(float)
    sex = rng.choice(["male", "female"], n_patients)
    skin_L = rng.normal(62, 7, n_patients)
    skin_A = rng.normal(17, 3, n_patients)
    skin_B = rng.normal(27, 4, n_patients)
    base_size = np.exp(rng.normal(np.log(3.5), 0.22, n_patients))

    # Lesion level latents.
    size_dev = rng.normal(0, 1, n)  # larger than this patient's usual lesion
    dark_dev = rng.normal(0, 1, n)  # darker than this patient's usual lesion
    border = rng.normal(0, 1, n)
    variegation = rng.normal(0, 1, n)
    blotch = rng.normal(0, 1, n)  # drawn in the image, weak proxy in metadata
    logit = (
        1.8 * size_dev
        + 1.5 * dark_dev
        + 2.0 * np.maximum(border, 0) * np.maximum(variegation, 0)
        + 1.6 * blotch
        + 0.01 * (age[pid] - 55)
    )
    # Intercept chosen so the mean probability is the asked positive rate.
    lo, hi = -20.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _sigmoid(logit + mid).mean() < positive_rate else (lo, mid)
    prob = _sigmoid(logit + (lo + hi) / 2)
    target = (rng.random(n) < prob).astype(int)

    diam = base_size[pid] * np.exp(0.3 * size_dev) + rng.normal(0, 0.15, n)
    diam = np.clip(diam, 1.0, 30.0)
    ecc = np.clip(rng.beta(4, 3, n), 0.05, 0.99)
    minor = diam * np.sqrt(1 - ecc**2) * 0.9 + 0.3
    area = np.pi / 4 * diam * minor
    perim = np.pi * (diam + minor) / 2 * (1 + 0.12 * np.maximum(border, 0) + rng.normal(0, 0.02, n))
    L_ext = skin_L[pid] + rng.normal(0, 1.5, n)
    A_ext = skin_A[pid] + rng.normal(0, 0.8, n)
    B_ext = skin_B[pid] + rng.normal(0, 0.8, n)
    L = L_ext - 12 - 4.0 * dark_dev + rng.normal(0, 1.0, n)
    A = A_ext + 3 + 1.0 * dark_dev + rng.normal(0, 0.8, n)
    B = B_ext - 2 + 0.8 * dark_dev + rng.normal(0, 0.8, n)
    site = rng.choice(list(LOCATIONS), n)
    loc_pairs = [LOCATIONS[s][rng.integers(len(LOCATIONS[s]))] for s in site]
    xyz = np.array([SITE_XYZ[s] for s in site], dtype=float) + rng.normal(0, 60, (n, 3))

    df = pd.DataFrame(
        {
            isic.ID: [f"ISIC_{i:07d}" for i in rng.choice(9_000_000, n, replace=False)],
            isic.TARGET: target,
            isic.PATIENT: [f"IP_{1_000_000 + p * 37:07d}" for p in pid],
            "age_approx": age[pid],
            "sex": sex[pid],
            "anatom_site_general": site,
            "clin_size_long_diam_mm": np.round(diam, 2),
            "image_type": "TBP tile: close-up",
            "tbp_tile_type": rng.choice(["3D: white", "3D: XP"], n, p=[0.3, 0.7]),
            "tbp_lv_A": A,
            "tbp_lv_Aext": A_ext,
            "tbp_lv_B": B,
            "tbp_lv_Bext": B_ext,
            "tbp_lv_C": np.hypot(A, B),
            "tbp_lv_Cext": np.hypot(A_ext, B_ext),
            "tbp_lv_H": np.degrees(np.arctan2(B, A)),
            "tbp_lv_Hext": np.degrees(np.arctan2(B_ext, A_ext)),
            "tbp_lv_L": L,
            "tbp_lv_Lext": L_ext,
            "tbp_lv_areaMM2": area,
            "tbp_lv_area_perim_ratio": perim**2 / area,
            "tbp_lv_color_std_mean": np.clip(
                1.2 + 0.5 * variegation + 0.3 * blotch + rng.normal(0, 0.4, n), 0, None
            ),
            "tbp_lv_deltaA": A - A_ext,
            "tbp_lv_deltaB": B - B_ext,
            "tbp_lv_deltaL": L - L_ext,
            "tbp_lv_deltaLB": np.hypot(L - L_ext, B - B_ext),
            "tbp_lv_deltaLBnorm": np.hypot(L - L_ext, B - B_ext) + rng.normal(0, 0.5, n),
            "tbp_lv_eccentricity": ecc,
            "tbp_lv_location": [p[0] for p in loc_pairs],
            "tbp_lv_location_simple": [p[1] for p in loc_pairs],
            "tbp_lv_minorAxisMM": minor,
            "tbp_lv_nevi_confidence": 100
            * _sigmoid(2 - 0.8 * dark_dev - 0.5 * border + rng.normal(0, 1, n)),
            "tbp_lv_norm_border": np.clip(3 + 1.5 * border + rng.normal(0, 0.5, n), 0, 10),
            "tbp_lv_norm_color": np.clip(3 + 1.5 * variegation + rng.normal(0, 0.5, n), 0, 10),
            "tbp_lv_perimeterMM": perim,
            "tbp_lv_radial_color_std_max": np.clip(
                0.8 + 0.4 * variegation + rng.normal(0, 0.3, n), 0, None
            ),
            "tbp_lv_stdL": np.clip(1.5 + 0.4 * variegation + rng.normal(0, 0.3, n), 0, None),
            "tbp_lv_stdLExt": np.clip(rng.normal(2.5, 0.4, n), 0, None),
            "tbp_lv_symm_2axis": np.clip(0.3 + 0.08 * blotch + rng.normal(0, 0.06, n), 0, 1),
            "tbp_lv_symm_2axis_angle": rng.integers(0, 180, n).astype(float),
            "tbp_lv_x": xyz[:, 0],
            "tbp_lv_y": xyz[:, 1],
            "tbp_lv_z": xyz[:, 2],
            "attribution": rng.choice(ATTRIBUTIONS, n),
            "copyright_license": rng.choice(["CC-BY", "CC-BY-NC", "CC-0"], n),
            "lesion_id": np.where(target == 1, [f"IL_{i:07d}" for i in range(n)], None),
            "iddx_full": np.where(
                target == 1,
                "Malignant::Malignant melanocytic proliferations (Melanoma)::Melanoma, NOS",
                "Benign",
            ),
            "iddx_1": np.where(target == 1, "Malignant", "Benign"),
            "iddx_2": np.where(
                target == 1, "Malignant melanocytic proliferations (Melanoma)", None
            ),
            "iddx_3": np.where(target == 1, "Melanoma, NOS", None),
            "iddx_4": None,
            "iddx_5": None,
            "mel_mitotic_index": np.where(target == 1, "<1/mm^2", None),
            "mel_thick_mm": np.where(target == 1, np.round(rng.uniform(0.1, 1.5, n), 2), np.nan),
            "tbp_lv_dnn_lesion_confidence": np.clip(60 + 35 * target + rng.normal(0, 5, n), 0, 100),
            # Hidden latents for drawing the image and scoring the oracle; never written.
            "_prob": prob,
            "_border": border,
            "_variegation": variegation,
            "_blotch": blotch,
            "_dark": dark_dev,
        }
    )
    # Missing values as in the real data: some ages and sexes, some sites.
    df.loc[rng.random(n) < 0.02, "age_approx"] = np.nan
    df.loc[rng.random(n) < 0.02, "sex"] = None
    df.loc[rng.random(n) < 0.01, "anatom_site_general"] = None
    return df


def _lab_to_rgb(L: float, A: float, B: float) -> np.ndarray:
    """Rough CIELAB -> sRGB; plenty for drawing a plausible lesion."""
    fy = (L + 16) / 116
    fx, fz = fy + A / 500, fy - B / 200

    def finv(t: float) -> float:
        return t**3 if t > 6 / 29 else 3 * (6 / 29) ** 2 * (t - 4 / 29)

    X, Y, Z = 0.9505 * finv(fx), finv(fy), 1.089 * finv(fz)
    rgb = np.array(
        [
            3.2406 * X - 1.5372 * Y - 0.4986 * Z,
            -0.9689 * X + 1.8758 * Y + 0.0415 * Z,
            0.0557 * X - 0.2040 * Y + 1.0570 * Z,
        ]
    )
    rgb = np.where(rgb > 0.0031308, 1.055 * np.clip(rgb, 0, None) ** (1 / 2.4) - 0.055, 12.92 * rgb)
    return np.clip(rgb * 255, 0, 255)


def _window(cx: float, cy: float, reach: float, size: int) -> tuple[slice, slice]:
    """Rows and columns that hold every pixel within `reach` of (cx, cy), with a margin: the
    lesion's pixels are computed only there (the bytes equal the whole grid's, tested)."""

    def span(centre: float) -> slice:
        return slice(
            max(0, int(np.floor(centre - reach)) - 2), min(size, int(np.ceil(centre + reach)) + 3)
        )

    return span(cy), span(cx)


def render_lesion(
    row: pd.Series, size: int, rng: np.random.Generator, whole_grid: bool = False
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Draw one lesion crop: skin, a lesion whose border, colour and blotches carry the latents.

    Returns the image and the disc that holds the whole lesion (centre x, y and radius as
    fractions of the side): where a heat map that looks at the lesion should point. The shapes
    are computed in the window that holds the lesion (`whole_grid`: everywhere, the reference).
    """
    c = size / 2 + rng.normal(0, size * 0.03, 2)
    radius = size * np.clip(row["clin_size_long_diam_mm"] / 14.0, 0.12, 0.45)
    irregular = 0.04 + 0.22 * max(row["_border"], 0)
    reach = radius * (1 + irregular * sum(1 / (k + 1) for k in range(3)))  # wobble's maximum
    box = (slice(0, size),) * 2 if whole_grid else _window(c[0], c[1], reach, size)
    yy, xx = np.mgrid[box].astype(float)
    dx, dy = xx - c[0], yy - c[1]
    r = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx)
    phases = rng.uniform(0, 2 * np.pi, 3)
    wobble = sum(irregular / (k + 1) * np.sin((k + 3) * theta + phases[k]) for k in range(3))
    inside = r < radius * (1 + wobble)

    img = np.empty((size, size, 3))
    img[:] = _lab_to_rgb(row["tbp_lv_Lext"], row["tbp_lv_Aext"], row["tbp_lv_Bext"])
    img += rng.normal(0, 4, (size, size, 1))
    lesion = _lab_to_rgb(row["tbp_lv_L"], row["tbp_lv_A"], row["tbp_lv_B"])
    window = img[box]  # a view: writes go to img
    window[inside] = lesion + rng.normal(0, 3, (inside.sum(), 3))
    # Variegation: large lighter and darker patches (pixel noise would vanish when resized).
    for _ in range(int(np.clip(round(2 * row["_variegation"] + 1), 0, 5))):
        px, py = c + rng.normal(0, radius * 0.4, 2)
        patch = (np.hypot(xx - px, yy - py) < radius * rng.uniform(0.25, 0.45)) & inside
        window[patch] += rng.choice([-1, 1]) * 35 * np.array([1.0, 0.8, 0.6])
    # Dark blue-grey blotches, pushed to one side: the image-only malignancy cue.
    n_blotch = int(np.clip(round(1.5 * row["_blotch"] + 1), 0, 6))
    side = rng.uniform(0, 2 * np.pi)
    for _ in range(n_blotch):
        ang = side + rng.normal(0, 0.6)
        dist = radius * rng.uniform(0.2, 0.7)
        bx, by = c[0] + dist * np.cos(ang), c[1] + dist * np.sin(ang)
        br = max(radius * rng.uniform(0.15, 0.3), size * 0.045)  # visible after resizing
        spot = (np.hypot(xx - bx, yy - by) < br) & inside
        window[spot] = np.array([70, 70, 95]) + rng.normal(0, 6, (spot.sum(), 3))
    return np.clip(img, 0, 255).astype(np.uint8), (c[0] / size, c[1] / size, reach / size)


def write_dataset(
    out_dir: str | Path,
    *,
    n_patients: int,
    mean_lesions: float,
    positive_rate: float,
    image_size: int,
    test_fraction: float,
    seed: int,
) -> Path:
    """Write train/test metadata CSVs, HDF5 JPEG stores, sample submission and the oracle file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = generate_metadata(n_patients, mean_lesions, positive_rate, seed)
    rng = np.random.default_rng(seed + 1)
    patients = df[isic.PATIENT].unique()
    test_patients = set(
        rng.choice(patients, max(1, int(len(patients) * test_fraction)), replace=False)
    )
    is_test = df[isic.PATIENT].isin(test_patients).to_numpy()

    discs: dict[str, tuple[float, float, float]] = {}

    def images(frame: pd.DataFrame):
        for _, row in frame.iterrows():
            img, discs[row[isic.ID]] = render_lesion(row, image_size, rng)
            yield row[isic.ID], img

    for split, frame in (("train", df[~is_test]), ("test", df[is_test])):
        write_hdf5_jpegs(out / f"{split}-image.hdf5", images(frame))
        public = frame[[c for c in isic.TRAIN_COLUMNS if c in frame.columns]]
        if split == "test":
            public = public.drop(columns=[isic.TARGET, *isic.TRAIN_ONLY])
        public.to_csv(out / f"{split}-metadata.csv", index=False, na_rep="NA")

    test = df[is_test]
    pd.DataFrame({isic.ID: test[isic.ID], "target": 0.0}).to_csv(
        out / "sample_submission.csv", index=False
    )
    disc = np.array([discs[i] for i in df[isic.ID]])
    pd.DataFrame(
        {
            isic.ID: df[isic.ID],
            "true_probability": df["_prob"],
            "split": np.where(is_test, "test", "train"),
            **{col: disc[:, j] for j, col in enumerate(isic.LESION_DISC)},
        }
    ).to_csv(out / isic.ORACLE_CSV, index=False)
    return out


def ensure_dataset(out_dir: str | Path, **settings) -> Path:
    """Generate the smoke data set into `out_dir` unless it holds it already (never into a
    folder of someone else's files: `shared.synthetic.ensure_generated`)."""
    return ensure_generated(out_dir, write_dataset, version=GENERATOR_VERSION, **settings)
