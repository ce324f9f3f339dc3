"""The review UI in a real browser: Playwright drives Debian's Chromium against a live server.

It signs in, reviews with the keyboard (accept, change a label), scrolls a volume, paints a
mask correction with the brush and saves it, and checks that the store recorded each change.
Screenshots of the main views are kept in ``test-artifacts/review/`` (or
``$MEDLABEL_ARTIFACTS/review``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REPO = Path(__file__).resolve().parents[2]


def _artifacts() -> Path:
    base = Path(os.environ.get("MEDLABEL_ARTIFACTS", REPO / "test-artifacts"))
    out = base / "review"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def server(live_job: tuple[str, object, Path]) -> tuple[str, object]:
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    return live_job[0], live_job[1]


@pytest.mark.slow
def test_review_in_chromium(server: tuple[str, object]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, store = server
    shots = _artifacts()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(url + "/")
        expect(page).to_have_url(url + "/login")
        page.fill("#username", "ana")
        page.fill("#password", "long enough pw")
        page.screenshot(path=str(shots / "login.png"))
        page.click("#signin")
        expect(page.locator("#queue li")).to_have_count(3)  # 2 ct-lungs + 1 classification
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / "queue-and-viewer.png"))

        def loads() -> int:
            return int(page.locator("#viewer").get_attribute("data-loads") or 0)

        def choose_model(name: str, count: int) -> None:
            before = loads()
            page.select_option("#model", name)
            expect(page.locator("#queue li")).to_have_count(count)
            page.wait_for_function(
                f"Number(document.getElementById('viewer').dataset.loads || 0) > {before}"
            )

        # classification: show only that model, change the label with a number key
        choose_model("cxr-pneumonia", 1)
        item = store.predictions("pending")  # type: ignore[attr-defined]
        photo = next(r for r in item if r["model"] == "cxr-pneumonia")
        wanted = "PNEUMONIA" if photo["label"] == "NORMAL" else "NORMAL"
        page.locator("#canvas").focus()
        page.keyboard.press("1" if wanted == "NORMAL" else "2")
        expect(page.locator("#progress")).to_contain_text("corrected 1")
        ann = store.latest_annotation(photo["item"], "cxr-pneumonia")  # type: ignore[attr-defined]
        assert ann is not None and ann["label"] == wanted and ann["author"] == "ana"

        # segmentation: accept one volume with the keyboard
        choose_model("ct-lungs", 2)
        page.locator("#canvas").focus()
        before = loads()
        page.keyboard.press("a")
        expect(page.locator("#progress")).to_contain_text("accepted 1")
        expect(page.locator("#queue li")).to_have_count(1)
        page.wait_for_function(
            f"Number(document.getElementById('viewer').dataset.loads || 0) > {before}"
        )

        # scroll slices, then paint with the brush and save a new mask version
        page.locator("#canvas").focus()
        before = page.locator("#sliceinfo").inner_text()
        page.keyboard.press("ArrowUp")
        expect(page.locator("#sliceinfo")).not_to_have_text(before)
        page.keyboard.press("b")
        page.keyboard.press("2")
        box = page.locator("#canvas").bounding_box()
        assert box is not None
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx - 60, cy)
        page.mouse.down()
        page.mouse.move(cx + 60, cy, steps=12)
        page.mouse.up()
        page.screenshot(path=str(shots / "brush-correction.png"))
        page.keyboard.press("s")
        expect(page.locator("#message")).to_contain_text("Saved mask version 1")
        expect(page.locator("#progress")).to_contain_text("corrected 2")
        page.screenshot(path=str(shots / "after-save.png"))

        # zoom in about the centre, then pan with Shift+drag: window/level stays as it was
        page.keyboard.press("v")
        page.keyboard.press("0")
        page.keyboard.press("=")
        assert page.evaluate("[state.zoom, state.panX, state.panY]") == [1.2, 0, 0]
        window = page.evaluate("[state.level, state.width]")
        page.mouse.move(cx, cy)
        page.keyboard.down("Shift")
        page.mouse.down()
        page.mouse.move(cx + 80, cy + 40, steps=5)
        page.mouse.up()
        page.keyboard.up("Shift")
        assert page.evaluate("[state.panX, state.panY]") == [80, 40]
        assert page.evaluate("[state.level, state.width]") == window
        page.screenshot(path=str(shots / "zoomed-and-panned.png"))
        page.keyboard.press("0")
        assert page.evaluate("[state.zoom, state.panX, state.panY]") == [1, 0, 0]

        # export the reviewed labels and retrain from the UI: no command line needed
        with page.expect_download() as download:
            page.click("#export")
        exported = download.value.path().read_text().splitlines()
        assert exported[0] == "image,label" and len(exported) == 3  # accepted + corrected
        page.fill("#minutes", "0.05")
        page.click("#retrain")
        expect(page.locator("#trainstatus")).to_contain_text("DONE", timeout=240_000)
        page.screenshot(path=str(shots / "retrained.png"))
        browser.close()
    progress = store.progress()  # type: ignore[attr-defined]
    assert (progress["accepted"], progress["corrected"]) == (1, 2)
    assert any(a["action"] == "review:corrected" and a["detail"]["mask"] for a in store.audit(10))  # type: ignore[attr-defined]


@pytest.mark.slow
def test_admin_adds_a_user_in_chromium(server: tuple[str, object]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, store = server
    store.add_user("root", "admin", "long enough pw")  # type: ignore[attr-defined]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(url + "/login")
        page.fill("#username", "root")
        page.fill("#password", "long enough pw")
        page.click("#signin")
        expect(page.locator("#admin")).to_be_visible()
        page.click("#admin summary")
        page.fill("#newname", "zoe")
        page.select_option("#newrole", "viewer")
        page.fill("#newpass", "another long pw")
        page.click("#adduserbtn")
        expect(page.locator("#users")).to_contain_text("zoe")
        expect(page.locator("#message")).to_contain_text("zoe saved")
        page.screenshot(path=str(_artifacts() / "users.png"))
        browser.close()
    assert store.role("zoe") == "viewer"  # type: ignore[attr-defined]
    assert store.check_password("zoe", "another long pw")  # type: ignore[attr-defined]
