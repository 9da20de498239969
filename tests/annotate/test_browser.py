"""The reading pages in a real browser (Debian's chromium driven by Playwright) against a real uvicorn
server on the phantom: a reader windows, draws, labels, ticks, navigates; the work survives a server killed
mid-session (a save made while it is down fails visibly and is retried); a second reader does not see it; the
adjudicator accepts the fusion and the export holds it. The pages fetch nothing from another origin and a
write without the page's CSRF token is refused."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.annotate.conftest import PASSWORD, missing, wait_job

from cxrlab.annotate.servers import free_port, serve_process
from cxrlab.annotate.trial import CHROMIUM, CHROMIUM_ARGS, browser_missing, reading_trial

SAVED = "document.getElementById('save-state').dataset.state === 'saved'"


@pytest.fixture(scope="module")
def site() -> Iterator[dict[str, Any]]:
    """The phantom imported as test images (2 readers each, then adjudication), its server, a browser.

    Its own temporary folder (not pytest's numbered ones, which other pytest runs on the machine prune)."""
    reason = browser_missing()
    if reason:
        missing(reason)
    from playwright.sync_api import sync_playwright

    from cxrlab.datasets.phantom import make_vindr

    holder = tempfile.TemporaryDirectory(prefix="cxrlab-browser-")
    tmp = Path(holder.name)
    root = make_vindr(tmp / "phantom", images=5, seed=3, size=384).root
    db, cache = str(tmp / "reading.db"), tmp / "cache"
    trial = reading_trial(db, cache, root / "train", PASSWORD, split="test")
    port = free_port()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield {
            "db": db,
            "cache": cache,
            "port": port,
            "trial": trial,
            "browser": browser,
            "log": tmp / "log",
            "phantom": root,
            "tmp": tmp,
        }
        browser.close()
    holder.cleanup()


def screenshot(page: Any, name: str) -> None:
    """Keep a screenshot where ``CXRLAB_SCREENSHOTS`` says (to look at the pages), else nowhere."""
    folder = os.environ.get("CXRLAB_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / name))


def new_page(site: dict[str, Any], base: str, seen: list[str]) -> Any:
    # bypass_csp: Playwright's own wait_for_function evaluates strings, which the pages' policy forbids.
    context = site["browser"].new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(30_000)  # a loaded 2-core machine
    page.on("request", lambda r: seen.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    return page


def login(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    try:
        page.wait_for_selector("section.project")
    except Exception as exc:  # say what the page shows instead
        raise AssertionError(f"{name}: no home page at {page.url}: {page.inner_text('body')!r}") from exc


def api_client(base: str, name: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, timeout=30)
    csrf = client.post("/api/login", json={"name": name, "password": PASSWORD}).json()["csrf_token"]
    return client, csrf


def view_state(page: Any) -> dict[str, float]:
    return page.evaluate(
        """() => { const s = window.cxrViewer.state; const d = s.display; const v = d.view;
        return {center: d.center, width: d.width, invert: d.invert, scale: v.scale,
                ox: v.offsetX, oy: v.offsetY, image: s.tasks[s.index].image_id}; }"""
    )


def canvas_grey(page: Any, points: list[tuple[int, int]]) -> list[int]:
    return page.evaluate(
        """(points) => { const c = document.getElementById('canvas').getContext('2d');
        return points.map(([x, y]) => c.getImageData(x, y, 1, 1).data[0]); }""",
        points,
    )


def expected_grey(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The viewer's window, written again here: linear from center - width/2 (0) to center + width/2 (255)."""
    grey = np.round((values.astype(float) - (center - width / 2)) / width * 255)
    return np.clip(grey, 0, 255)


def check_window_on_canvas(page: Any, client: httpx.Client, image_id: int) -> None:
    """At 1:1 every canvas pixel is one rendition pixel through the window now shown."""
    raw = client.get(f"/api/images/{image_id}/display", params={"format": "raw"})
    w, h = int(raw.headers["X-Width"]), int(raw.headers["X-Height"])
    pixels = np.frombuffer(raw.content, dtype="<u2").reshape(h, w)
    page.keyboard.press("1")
    page.wait_for_function("window.cxrViewer.state.display.view.scale === 1")
    page.wait_for_function("window.cxrViewer.state.display.fullResolution")  # a halved image: fetched now
    page.wait_for_timeout(100)
    s = view_state(page)
    cw, ch = page.evaluate(
        "[document.getElementById('canvas').width, document.getElementById('canvas').height]"
    )
    ox, oy = int(s["ox"]), int(s["oy"])  # whole pixels at 1:1; the part of the image on the canvas:
    rng = np.random.default_rng(0)
    xs = rng.integers(max(0, -ox), min(w, cw - ox), 60)
    ys = rng.integers(max(0, -oy), min(h, ch - oy), 60)
    shown = canvas_grey(page, [(int(x + ox), int(y + oy)) for x, y in zip(xs, ys, strict=True)])
    want = expected_grey(pixels[ys, xs], s["center"], s["width"])
    assert np.abs(np.array(shown) - want).max() <= 1, (shown, want.tolist())
    page.keyboard.press("f")


def drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


def test_reader_adjudicator_and_export_in_the_browser(site: dict[str, Any]) -> None:
    seen: list[str] = []
    port, trial = site["port"], site["trial"]
    base = f"http://127.0.0.1:{port}"
    with serve_process(site["db"], site["cache"], port=port, log=site["log"]) as (_, proc):
        page = new_page(site, base, seen)
        login(page, base, "r1")
        n = trial.images
        assert f"0 / {n} done" in page.inner_text("section.project")
        page.click("a.button:has-text('Read')")
        page.wait_for_function("window.cxrViewer && window.cxrViewer.state.timings.length === 1")
        client, _ = api_client(base, "r1")

        # Window by dragging: the numbers move, and the canvas shows the rendition through them.
        before = view_state(page)
        image_id = int(before["image"])
        page.keyboard.press("w")
        rect = page.locator("#canvas").bounding_box()
        cx, cy = rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2
        drag(page, (cx, cy), (cx - 90, cy + 60))
        after = view_state(page)
        assert after["width"] < before["width"] and after["center"] > before["center"]
        check_window_on_canvas(page, client, image_id)

        # Draw a box, label it by its shortcut, tick an image-level label.
        page.keyboard.press("b")
        s = view_state(page)
        start, end = (
            (rect["x"] + s["ox"] + 60, rect["y"] + s["oy"] + 80),
            (rect["x"] + s["ox"] + 250, rect["y"] + s["oy"] + 300),
        )
        drag(page, start, end)
        page.wait_for_selector(".picker")
        page.keyboard.press("3")
        page.keyboard.press("Shift+Digit1")
        page.wait_for_function(SAVED)
        project = client.get(f"/api/projects/{trial.project_id}").json()
        label = project["box_labels"][2]
        assert page.is_checked("input[data-label='COPD']")
        want = [(start[0] - rect["x"] - s["ox"]) / s["scale"], (start[1] - rect["y"] - s["oy"]) / s["scale"]]
        want += [(end[0] - rect["x"] - s["ox"]) / s["scale"], (end[1] - rect["y"] - s["oy"]) / s["scale"]]

        def stored() -> list[dict[str, Any]]:
            return client.get(f"/api/images/{image_id}/annotations").json()

        marks = stored()
        boxed = [m for m in marks if m["box"]]
        assert [m["label"] for m in boxed] == [label] and [m["label"] for m in marks if not m["box"]] == [
            "COPD"
        ]
        assert np.allclose(boxed[0]["box"], want, atol=0.6), (boxed[0]["box"], want)

        # Next and back: the same box, from the service, where it was drawn.
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            f"window.cxrViewer.state.timings.length === 2 && !location.search.includes('image={image_id}')"
        )
        assert page.evaluate("window.cxrViewer.state.editor.marks.length") == 0
        page.keyboard.press("ArrowLeft")
        page.wait_for_function(
            f"window.cxrViewer.state.timings.length === 3 && location.search.includes('image={image_id}')"
        )
        in_page = page.evaluate("window.cxrViewer.state.editor.boxes().map(m => m.box)")
        assert in_page == [boxed[0]["box"]]
        screenshot(page, "viewer.png")

        # The server dies: the next change fails visibly; after the restart, Retry stores it.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        page.keyboard.press("Shift+Digit3")
        page.wait_for_function("document.getElementById('save-state').dataset.state === 'failed'")
        assert page.is_visible("#retry")
    with serve_process(site["db"], site["cache"], port=port, log=site["log"]):
        page.click("#retry")
        page.wait_for_function(SAVED)
        page.reload()
        page.wait_for_function("window.cxrViewer && window.cxrViewer.state.timings.length === 1")
        assert page.is_checked("input[data-label='COPD']") and page.is_checked(
            "input[data-label='Pneumonia']"
        )
        assert page.evaluate("window.cxrViewer.state.editor.boxes().map(m => m.box)") == [boxed[0]["box"]]
        page.keyboard.press("d")  # read: done
        page.wait_for_function("window.cxrViewer.state.timings.length === 2")  # on to the next image
        assert page.evaluate("window.cxrViewer.state.tasks[0].status") == "done"
        assert page.inner_text("#progress") == f"1 / {n} read"

        # A second reader: blind to r1's marks, in the page and through the API; reads the image too.
        page2 = new_page(site, base, seen)
        login(page2, base, "r2")
        page2.goto(f"{base}/ui/viewer.html?project={trial.project_id}&image={image_id}")
        page2.wait_for_function("window.cxrViewer && window.cxrViewer.state.timings.length === 1")
        assert page2.evaluate("window.cxrViewer.state.editor.marks.length") == 0
        assert not page2.is_checked("input[data-label='COPD']")
        r2, csrf2 = api_client(base, "r2")
        assert r2.get(f"/api/images/{image_id}/annotations").json() == []
        box2 = [v + 4 for v in boxed[0]["box"]]
        made = r2.post(
            f"/api/images/{image_id}/annotations",
            headers={"X-CSRF-Token": csrf2},
            json={"label": label, "box": box2},
        )
        assert made.status_code == 201, made.text
        assert r2.post(f"/api/images/{image_id}/complete", headers={"X-CSRF-Token": csrf2}).status_code == 200

        # The adjudicator sees both readers and the fusion, accepts it, finishes; the export holds it.
        page3 = new_page(site, base, seen)
        login(page3, base, "adj")
        page3.click("a.button:has-text('Adjudicate')")
        page3.wait_for_selector(".finding[data-key='F1']")
        adj, _ = api_client(base, "adj")
        data = adj.get(f"/api/images/{image_id}/adjudication").json()
        assert sorted({r["reader"] for r in data["reads"]}) == data["readers"] and len(data["readers"]) == 2
        fused = [p for p in data["proposed"] if p["box"]]
        assert [p["label"] for p in fused] == [label]
        assert "kappa" in page3.inner_text("#agreement")
        screenshot(page3, "adjudicate.png")
        # Edit: the fused box moved by dragging it is saved as "edited"; Accept puts the fusion back.
        page3.click(".finding[data-key='F1'] button:has-text('Edit')")
        page3.wait_for_function(SAVED)
        a = page3.evaluate(
            "(() => { const v = window.cxrAdjudication.state.display.view;"
            " return {scale: v.scale, ox: v.offsetX, oy: v.offsetY}; })()"
        )
        rect3 = page3.locator("#canvas").bounding_box()
        x0, y0, x1, y1 = fused[0]["box"]
        grab = (
            rect3["x"] + a["ox"] + (x0 + x1) / 2 * a["scale"],
            rect3["y"] + a["oy"] + (y0 + y1) / 2 * a["scale"],
        )
        drag(page3, grab, (grab[0] + 10 * a["scale"], grab[1]))
        page3.wait_for_function(SAVED)
        (edited,) = adj.get(f"/api/images/{image_id}/adjudication").json()["consensus"]
        assert edited["provenance"] == "edited"
        assert np.allclose(edited["box"], [x0 + 10, y0, x1 + 10, y1], atol=0.6), (edited["box"], fused)
        page3.click(".finding[data-key='F1'] button:has-text('Accept')")
        page3.click("#finish")
        page3.wait_for_function(SAVED)
        boss, _ = api_client(base, "boss")
        findings = boss.get(f"/api/projects/{trial.project_id}/export").json()["findings"]
        consensus = [f for f in findings if f["reader"] == "consensus" and f["label"] == label]
        assert len(consensus) == 1
        got = [consensus[0][k] for k in ("x_min", "y_min", "x_max", "y_max")]
        assert np.allclose(got, fused[0]["box"]), (got, fused)
        for p in (page, page2, page3):
            assert p.errors == []
    assert seen and all(url.startswith(base + "/") or url.startswith("data:") for url in seen), seen


def open_viewer(page: Any, base: str, project_id: int, image_id: int) -> None:
    page.goto(f"{base}/ui/viewer.html?project={project_id}&image={image_id}")
    page.wait_for_function("window.cxrViewer && window.cxrViewer.state.timings.length === 1")


def test_same_origin_only_csrf_refused_and_a_stale_write_reloads(site: dict[str, Any]) -> None:
    seen: list[str] = []
    trial = site["trial"]
    with serve_process(site["db"], site["cache"], log=site["log"]) as (base, _):
        policy = httpx.get(f"{base}/ui/viewer.html").headers["content-security-policy"]
        assert "default-src 'self'" in policy and "connect-src 'self'" in policy
        client, csrf = api_client(base, "r1")
        queue = client.get(f"/api/projects/{trial.project_id}/queue").json()
        image_id = queue["tasks"][-1]["image_id"]
        made = client.post(
            f"/api/images/{image_id}/annotations",
            headers={"X-CSRF-Token": csrf},
            json={"label": "Nodule/Mass", "box": [40, 40, 120, 120]},
        ).json()
        page = new_page(site, base, seen)
        login(page, base, "r1")
        open_viewer(page, base, trial.project_id, image_id)

        # A write from the page without its token (or with a wrong one) is refused and changes nothing.
        statuses = page.evaluate(
            """async (id) => {
            const body = JSON.stringify({label: "Cardiomegaly", box: [1, 1, 50, 50]});
            const post = (headers) => fetch(`/api/images/${id}/annotations`,
                {method: "POST", headers: {"Content-Type": "application/json", ...headers}, body});
            return [(await post({})).status, (await post({"X-CSRF-Token": "forged"})).status]; }""",
            image_id,
        )
        assert statuses == [403, 403]
        assert [m["id"] for m in client.get(f"/api/images/{image_id}/annotations").json()] == [made["id"]]

        # Someone else (another tab) moved the box: the page's stale delete gets 409 and shows the stored box.
        moved = client.patch(
            f"/api/annotations/{made['id']}",
            headers={"X-CSRF-Token": csrf},
            json={"version": made["version"], "box": [50, 50, 130, 130]},
        )
        assert moved.status_code == 200
        page.keyboard.press("Tab")  # select the box
        page.keyboard.press("Delete")
        page.wait_for_function("document.getElementById('save-state').dataset.state === 'stale'")
        page.wait_for_function("window.cxrViewer.state.editor.boxes().length === 1")
        assert page.evaluate("window.cxrViewer.state.editor.boxes()[0].box") == [50, 50, 130, 130]
        assert len(client.get(f"/api/images/{image_id}/annotations").json()) == 1

        # Move the box by its body, resize it by a corner, relabel it by type-ahead: each change stored.
        s = view_state(page)
        rect = page.locator("#canvas").bounding_box()

        def screen(x: float, y: float) -> tuple[float, float]:
            return rect["x"] + s["ox"] + x * s["scale"], rect["y"] + s["oy"] + y * s["scale"]

        drag(page, screen(90, 90), screen(110, 100))
        page.wait_for_function(SAVED)
        drag(page, screen(150, 140), screen(170, 180))  # the bottom-right corner, now at (150, 140)
        page.wait_for_function(SAVED)
        page.keyboard.press("e")
        page.keyboard.type("pneumot")
        page.keyboard.press("Enter")
        page.wait_for_function(SAVED)
        (mark,) = client.get(f"/api/images/{image_id}/annotations").json()
        assert mark["label"] == "Pneumothorax"
        assert np.allclose(mark["box"], [70, 60, 170, 180], atol=0.6), mark["box"]
        # Nothing of the page spills over at 1280 x 800.
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        assert page.evaluate("document.documentElement.scrollHeight <= innerHeight")

        # Keyboard help, presets and invert change what is shown.
        page.keyboard.press("?")
        assert page.is_visible("dialog#help")
        screenshot(page, "help.png")
        page.keyboard.press("Escape")
        page.keyboard.press("l")
        lung = page.evaluate("window.cxrViewer.state.display.width")
        page.keyboard.press("m")
        assert page.evaluate("window.cxrViewer.state.display.width") != lung
        page.keyboard.press("i")
        assert page.evaluate("window.cxrViewer.state.display.invert") is True

        # A large image opens halved; at 1:1 its full resolution is fetched and shown pixel for pixel.
        from cxrlab.datasets.phantom import make_vindr

        big = make_vindr(site["tmp"] / "big", images=1, seed=5, size=1600).root
        boss, boss_csrf = api_client(base, "boss")
        imported = boss.post(
            f"/api/projects/{trial.project_id}/import",
            headers={"X-CSRF-Token": boss_csrf},
            json={"source": str(big), "split": "test"},
        )
        assert imported.status_code == 202, imported.text
        assert wait_job(boss, imported.json())["result"]["added"] == 1
        big_id = max(
            t["image_id"] for t in client.get(f"/api/projects/{trial.project_id}/queue").json()["tasks"]
        )
        open_viewer(page, base, trial.project_id, big_id)
        info = client.get(f"/api/images/{big_id}").json()
        assert page.evaluate("window.cxrViewer.state.display.entry.level") == 1
        assert page.evaluate("window.cxrViewer.state.display.pixels.width") == (info["width"] + 1) // 2
        check_window_on_canvas(page, client, big_id)
        assert page.evaluate("window.cxrViewer.state.display.pixels.width") == info["width"]
        assert page.errors == []
    assert seen and all(url.startswith(base + "/") or url.startswith("data:") for url in seen), seen


def test_admin_pages(site: dict[str, Any]) -> None:
    seen: list[str] = []
    trial = site["trial"]
    with serve_process(site["db"], site["cache"], log=site["log"]) as (base, _):
        # Both readers finish one more image, so that agreement has something to say.
        readers = [api_client(base, name) for name in trial.readers]
        pending = [
            {
                t["image_id"]
                for t in c.get(f"/api/projects/{trial.project_id}/queue").json()["tasks"]
                if t["status"] == "pending"
            }
            for c, _ in readers
        ]
        image_id = min(set.intersection(*pending))
        for shift, (c, token) in enumerate(readers):
            box = [30 + shift, 30, 150, 160]
            c.post(
                f"/api/images/{image_id}/annotations",
                headers={"X-CSRF-Token": token},
                json={"label": "Cardiomegaly", "box": box},
            )
            assert (
                c.post(f"/api/images/{image_id}/complete", headers={"X-CSRF-Token": token}).status_code == 200
            )
        page = new_page(site, base, seen)
        login(page, base, "boss")
        page.click("header a:has-text('Admin')")
        page.wait_for_selector("table.data")
        assert "r1" in page.inner_text("table.data") and "R1" in page.inner_text("table.data")
        page.click("[data-tab=users]")
        page.wait_for_selector("h2:has-text('Users')")  # the project tab has a name field too
        page.fill("input[name=name]", "newreader")
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_selector("#notice:has-text('user newreader added')")
        assert "newreader" in page.inner_text("table.data")
        page.click("[data-tab=import]")
        page.wait_for_selector("section.card h2:has-text('Progress')")
        boss, _ = api_client(base, "boss")
        before = boss.get(f"/api/projects/{trial.project_id}/progress").json()["images"]["test"]
        assert f"test: {before}" in page.inner_text("main")
        page.fill("input[name=source]", str(site["phantom"] / "test"))
        page.click("form button[type=submit]")
        page.wait_for_selector("#notice")
        added = len(list((site["phantom"] / "test").glob("*.dicom")))
        assert page.inner_text("#notice").startswith(f"{added} added"), page.inner_text("#notice")
        assert f"test: {before + added}" in page.inner_text("main")  # the progress, drawn again
        screenshot(page, "import.png")
        page.click("[data-tab=agreement]")
        page.wait_for_selector("section.card h2:has-text('Agreement')")
        assert "Fleiss kappa" in page.inner_text("section.card")
        screenshot(page, "agreement.png")
        page.click("[data-tab=export]")
        with page.expect_download() as download:
            page.click("#export")
        assert download.value.suggested_filename.endswith(".csv")
        page.wait_for_selector("#export-result p")
        screenshot(page, "admin.png")
        assert page.errors == []
    assert all(
        url.startswith(base + "/") or url.startswith("data:") or url.startswith("blob:") for url in seen
    )


def test_the_login_form_cannot_be_sent_before_its_script_runs(site: dict[str, Any]) -> None:
    """A click on "Log in" before the page's module ran (a slow load) used to submit the form natively: the
    login page again, the password in its URL, the reader stuck there. Now the button waits for the script."""
    seen: list[str] = []
    with serve_process(site["db"], site["cache"], log=site["log"]) as (base, _):
        page = new_page(site, base, seen)
        held: list[Any] = []
        page.route("**/ui/login.js", lambda route: held.append(route))  # the script does not arrive yet
        page.goto(f"{base}/ui/login.html", wait_until="commit")  # a module script holds DOMContentLoaded
        page.wait_for_selector("input[name=password]")
        page.fill("input[name=name]", "r2")
        page.fill("input[name=password]", PASSWORD)
        assert page.is_disabled("button[type=submit]")
        page.press("input[name=password]", "Enter")  # implicit submission: nothing either
        page.wait_for_timeout(300)
        assert page.url == f"{base}/ui/login.html" and PASSWORD.split()[0] not in page.url
        assert held, "the page asked for its script"
        held[0].continue_()
        page.click("button[type=submit]")  # waits until the script enabled it
        page.wait_for_url(f"{base}/ui/home.html")
        page.wait_for_selector("section.project")
        assert page.errors == []
