import csv

import cv2
import numpy as np

from training.data import grouped_folds, load_crops, load_dataset, neighbour_groups


def test_neighbouring_ids_share_a_group():
    files = ["b.1.jpg", "b.2.jpg", "b.3.jpg", "b.10.jpg", "m.2.jpg", "b.11.jpg"]
    g = neighbour_groups(files)
    assert g[0] == g[1] == g[2]
    assert g[3] == g[5] != g[0]
    assert g[4] != g[1]  # same number, other stem


def _write_folder(root, n=24, masks=True):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    rows, meta = [], []
    for i in range(n):
        img = rng.integers(0, 255, (60, 80), dtype=np.uint8)
        cv2.imwrite(str(root / "images" / f"{i}.png"), img)
        mask = np.zeros((60, 80), np.uint8)
        mask[10:30, 20:50] = 255
        cv2.imwrite(str(root / "masks" / f"{i}.png"), mask)
        label = "malignant" if i % 3 else "benign"
        rows.append({"file": f"images/{i}.png", "label": label})
        meta.append(
            {
                "file": f"images/{i}.png",
                "case": str(i // 2),
                "mask": f"masks/{i}.png" if (masks and i != 5) else "",
                "calcifications": "microcalcifications" if i % 2 else "",
            }
        )
    rows.append({"file": "images/0.png", "label": ""})  # unlabelled row is skipped
    for name, table in (("labels.csv", rows), ("metadata.csv", meta)):
        with open(root / name, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    return root


def test_generic_folder_reads_labels_cases_masks_and_descriptors(tmp_path):
    samples = load_dataset(_write_folder(tmp_path / "site"))
    assert len(samples) == 23  # 24 labelled, one without mask skipped
    assert samples[0].group == "site:0" and samples[0].dataset == "site"
    calc = [s.descriptors[3] for s in samples]
    assert set(calc) == {-1, 2}
    crops = load_crops(samples[:2], 32)
    assert crops.shape == (2, 32, 32, 3)


def test_folds_never_split_a_case(tmp_path):
    samples = load_dataset(_write_folder(tmp_path / "site"))
    for train, test in grouped_folds(samples, 3, seed=0):
        assert not {samples[i].group for i in train} & {samples[i].group for i in test}
