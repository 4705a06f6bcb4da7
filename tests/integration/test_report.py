"""`scrnet eval --report`: the page parsed (every section, every image decodes, figures equal the JSON), and, with
the slow marker, rendered in headless Chromium as a person would look at it."""

import base64
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from data_fixtures import make_cityscapes
from model_fixtures import varied_r18

import scrnet
from scrnet.cli import main
from scrnet.config import Config, DataConfig
from scrnet.data.cityscapes import CLASSES, PALETTE
from scrnet.evaluation.report import SECTIONS

pytest.importorskip("matplotlib")  # the report extra


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images, self.cells, self._cell = [], [], {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "img":
            self.images.append((attrs.get("src", ""), attrs.get("alt", "")))
        if tag == "td" and attrs.get("class"):
            self._cell = attrs["class"]

    def handle_data(self, data):
        if self._cell:
            self.cells[self._cell] = data
            self._cell = None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    root = make_cityscapes(base / "cs", "val", n=3, size=(64, 128), label_ids=(7, 8, 11, 21, 23, 26, 24, 0, 4))
    model = varied_r18(num_classes=19, channels=32, seed=3)
    with torch.no_grad():
        for step in model.decoder.refine:  # non-zero offsets, so the offset section has something to show
            for p in step.parameters():
                p.add_(0.01 * torch.randn_like(p))
    checkpoint = scrnet.save_checkpoint(model, base / "m.pth", CLASSES, PALETTE,
                                        Config(model=model.cfg, data=DataConfig(root=str(root))))
    page, out = base / "report.html", base / "e.json"
    assert main(["eval", str(checkpoint), "--report", str(page), "--json", str(out), "--report-worst", "2"]) == 0
    return page, json.loads(out.read_text())


def test_every_section_is_there_and_every_image_decodes(report):
    from PIL import Image

    page, _ = report
    parsed = Page()
    parsed.feed(page.read_text())
    assert parsed.sections == list(SECTIONS)
    assert len(parsed.images) == 3 + 2 * 4 + 1  # plots, two worst images x 4 panels, the offset field
    for src, alt in parsed.images:
        assert src.startswith("data:image/png;base64,"), alt  # inline: the page needs no network
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        image.load()
        assert image.width > 10 and image.height > 10, alt
    assert "http://" not in page.read_text() and "https://" not in page.read_text()


def test_the_figures_in_the_page_are_the_jsons(report):
    page, summary = report
    parsed = Page()
    parsed.feed(page.read_text())
    assert parsed.cells["mIoU"] == f"{100 * summary['miou']:.2f} %"
    assert parsed.cells["pixel-accuracy"] == f"{100 * summary['aacc']:.2f} %"
    assert parsed.cells["Boundary-IoU"].startswith(f"{100 * summary['boundary_iou']['mean']:.2f} %")
    assert parsed.cells["boundary-F@3px"] == f"{100 * summary['boundary_f']['3']['mean']:.2f} %"
    text = page.read_text()
    for name in CLASSES:
        iou = summary["iou"][name]
        assert f"<td>{name}</td><td>{'n/a' if iou is None else f'{100 * iou:.2f}'}</td>" in text
    for band in summary["distance_bands"]:
        value = "n/a" if band["miou"] is None else f"{100 * band['miou']:.2f}"
        assert f"<td>{value}</td>" in text
    worst = [line for line in text.splitlines() if line.startswith("<h3>")]
    values = [float(line.split("mIoU ")[1].split(" %")[0]) for line in worst]
    assert len(values) == 2 and values == sorted(values)  # the worst first


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-headless-shell") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium: apt-get install chromium (Debian) or "
                                             "chromium-headless-shell")
def test_the_page_renders_in_headless_chromium(report, tmp_path):
    from PIL import Image

    page, _ = report
    shot = tmp_path / "page.png"
    height = 6000
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             f"--window-size=1300,{height}", f"--screenshot={shot}", page.as_uri()],
                            capture_output=True, text=True, timeout=180)
    assert shot.is_file(), result.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("L"))
    assert image.std() > 10  # not blank
    rows = np.where((image < 250).any(axis=1))[0]  # rows with anything drawn on them
    assert rows.max() > 0.5 * height  # the page's full height was laid out (text, tables, plots, images)
    # the last section (the offset field) is drawn: content near the bottom of the drawn area
    assert (image[rows.max() - 50:rows.max()] < 250).any()


def test_class_names_with_maths_and_markup_are_shown_as_text(tmp_path):
    """A class name is data: '$\\undefinedmacro$' used to make the matplotlib figures (and the report) fail, and
    markup must not become HTML."""
    from data_fixtures import make_folder

    names = ("$\\undefinedmacro$", "<b>bold</b>", "a & b")
    root = make_folder(tmp_path / "data", "val", n=2, size=(64, 96), classes=names)
    model = varied_r18(num_classes=3, channels=16, seed=1)
    checkpoint = scrnet.save_checkpoint(model, tmp_path / "m.pth", list(names), [(1, 2, 3), (4, 5, 6), (7, 8, 9)],
                                        Config(model=model.cfg, data=DataConfig(type="folder", root=str(root))))
    page = tmp_path / "r.html"
    assert main(["eval", str(checkpoint), "--report", str(page), "--report-worst", "1"]) == 0
    text = page.read_text()
    assert "<td>$\\undefinedmacro$</td>" in text and "&lt;b&gt;bold&lt;/b&gt;" in text and "<b>bold</b>" not in text
    parsed = Page()
    parsed.feed(text)
    assert {"per-class", "confusion"} <= set(parsed.sections)
    figures = {alt: src for src, alt in parsed.images}
    for alt in ("per-class bar chart", "confusion matrix"):  # drawn, with the names as text
        assert figures[alt].startswith("data:image/png;base64,") and len(figures[alt]) > 5000


def test_a_model_without_offsets_gets_a_report_without_an_offset_section(tmp_path):
    """CARAFE moves no sample: its SRM steps report no offsets, and the report used to fail drawing a field that
    does not exist."""
    from data_fixtures import make_folder

    root = make_folder(tmp_path / "data", "val", n=2, size=(64, 96))
    model = scrnet.create_model("scrnet_r18", num_classes=3, channels=16, srm={"mode": "carafe"})
    checkpoint = scrnet.save_checkpoint(model, tmp_path / "m.pth", ["a", "b", "c"], [(1, 2, 3), (4, 5, 6), (7, 8, 9)],
                                        Config(model=model.cfg, data=DataConfig(type="folder", root=str(root))))
    page = tmp_path / "r.html"
    assert main(["eval", str(checkpoint), "--report", str(page), "--report-worst", "1"]) == 0
    parsed = Page()
    parsed.feed(page.read_text())
    assert {"per-class", "worst"} <= set(parsed.sections) and "offsets" not in parsed.sections
