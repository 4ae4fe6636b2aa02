"""``python -m training.training_hashes`` on a synthetic data folder: the list, the card entry
naming it with its sha256 and the collections, and the app reading it back."""

import json

import cv2

from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.models.shipped import ModelCard
from thyroid_desktop.core.site.training_images import CARD_KEY, load_training_hashes
from training.training_hashes import main


def test_the_command_writes_the_list_and_the_card_entry(tmp_path, capsys):
    data, models = tmp_path / "data", tmp_path / "models"
    for name, seeds in (("set-a", (0, 1)), ("set-b", (2,))):
        (data / name / "images").mkdir(parents=True)
        for s in seeds:
            cv2.imwrite(str(data / name / "images" / f"{s}.png"), make_phantom(seed=s).pixels)
        (data / name / "images" / "notes.txt").write_text("not an image")
    models.mkdir()
    (models / "model_card.json").write_text(json.dumps({"id": "m"}))
    assert (
        main(["--data", str(data), "--collections", "set-a", "set-b", "--models", str(models)]) == 0
    )
    out = capsys.readouterr().out
    assert "set-a 2, set-b 1 images" in out
    card = json.loads((models / "model_card.json").read_text())
    entry = card[CARD_KEY]
    assert card["id"] == "m"  # the rest of the card is kept
    assert {k: v["images"] for k, v in entry["collections"].items()} == {"set-a": 2, "set-b": 1}
    assert entry["command"].endswith("--collections set-a set-b")
    hashes = load_training_hashes(ModelCard(card, models))
    assert hashes.match(open_image(data / "set-b" / "images" / "2.png")) == "set-b"
    first = (models / entry["file"]).read_bytes()
    assert (
        main(["--data", str(data), "--collections", "set-a", "set-b", "--models", str(models)]) == 0
    )
    assert (models / entry["file"]).read_bytes() == first  # reproducible
