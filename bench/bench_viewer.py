"""The reading viewer in a real browser: time from "next" to the new image drawn, while 20 simulated
readers load the service.

Headless Debian chromium (Playwright) reads a queue of phantom 2,500 px DICOMs (HTJ2K, 16-bit renditions
windowed in the page) from a real uvicorn server on loopback. The page times each "next" itself
(``performance.now()`` from the key to the image and its marks drawn, the 16-bit window applied), after the
reader looked at the image for DWELL seconds (what lets the page fetch the next image ahead). The viewer opens
a 2,500 px image halved (its fitted view shows no more) and fetches the full resolution when zoomed in. The
load: 20 asyncio httpx clients, each its own reader session, each cycle opening an image as the viewer does
(info + halved display data, 3.4 MB; every ZOOM_EVERY-th image the full 13.8 MB too), saving a box and
pausing THINK seconds; bounded in count, time and connections, 127.0.0.1 only. Display data is made once
ahead, as after an import (the issue's "after the first view").
Baseline: the same browser run on the idle server, in this run. Target: p95 under load < 300 ms.
The README's screenshot of the viewer (docs/figures/viewer.png) is taken at the end.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from cxrlab.annotate.servers import serve_process
from cxrlab.annotate.trial import CHROMIUM, CHROMIUM_ARGS, browser_missing, reading_trial
from cxrlab.datasets.phantom import make_vindr

IMAGES = 20
SIZE = 2500
READERS = 5  # r1 reads in the browser, r2..r5 carry the simulated sessions
LOAD_SESSIONS = 20
THINK = 1.0
ZOOM_EVERY = 2
DWELL = 1.0
NEXTS = IMAGES - 1
LOAD_LIMIT_S = 240
PASSWORD = "bench password 1"
FIGURE_KB = 290
FIGURE = Path(__file__).resolve().parent.parent / "docs" / "figures" / "viewer.png"


class Load:
    """20 simulated readers on a thread of their own (asyncio + httpx), until ``stop`` or the time limit."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors = 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _reader(self, client: httpx.AsyncClient, name: str, offset: int) -> None:
        r = await client.post("/api/login", json={"name": name, "password": PASSWORD})
        csrf = r.json()["csrf_token"]
        queue = (await client.get("/api/projects/1/queue")).json()["tasks"]
        deadline = time.monotonic() + LOAD_LIMIT_S
        i = offset
        while not self.stop.is_set() and time.monotonic() < deadline:
            image = queue[i % len(queue)]["image_id"]
            i += 1
            t0 = time.perf_counter()
            try:
                info = await client.get(f"/api/images/{image}")
                raw = await client.get(f"/api/images/{image}/pixels", params={"level": 1})
                if i % ZOOM_EVERY == 0:  # zoomed in: the full resolution too
                    full = await client.get(f"/api/images/{image}/pixels")
                    self.errors += full.status_code != 200
                saved = await client.post(
                    f"/api/images/{image}/annotations",
                    headers={"X-CSRF-Token": csrf},
                    json={"label": "Nodule/Mass", "box": [100, 100, 300, 300]},
                )
                self.errors += info.status_code != 200 or raw.status_code != 200 or saved.status_code != 201
            except httpx.HTTPError:
                self.errors += 1
            self.latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(THINK)

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=2)
        clients = [
            httpx.AsyncClient(base_url=self.base, timeout=60, limits=limits) for _ in range(LOAD_SESSIONS)
        ]
        names = [f"r{2 + k % (READERS - 1)}" for k in range(LOAD_SESSIONS)]
        await asyncio.gather(
            *(self._reader(c, n, k) for k, (c, n) in enumerate(zip(clients, names, strict=True)))
        )
        for c in clients:
            await c.aclose()


def browse(browser: object, base: str, shot: Path | None = None) -> list[float]:
    """r1 in the viewer: NEXTS times "next" after DWELL seconds; the page's own timings (ms)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{base}/ui/login.html")
    page.fill("input[name=name]", "r1")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("section.project")
    page.goto(f"{base}/ui/viewer.html?project=1")
    page.wait_for_function("window.cxrViewer && window.cxrViewer.state.timings.length === 1")
    for k in range(NEXTS):
        page.wait_for_timeout(DWELL * 1000)
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"window.cxrViewer.state.timings.length === {k + 2}")
    timings = page.evaluate("window.cxrViewer.state.timings.slice(1)")
    if shot is not None:
        take_screenshot(page, shot)
    context.close()
    return timings


def take_screenshot(page: object, path: Path) -> None:
    """The viewer with a box drawn and labelled and an image-level label ticked, as a palette PNG."""
    from PIL import Image

    page.keyboard.press("ArrowLeft")  # type: ignore[attr-defined]
    page.wait_for_timeout(800)  # type: ignore[attr-defined]
    page.keyboard.press("1")  # type: ignore[attr-defined]
    page.wait_for_function("window.cxrViewer.state.display.fullResolution")  # type: ignore[attr-defined]
    page.keyboard.press("f")  # type: ignore[attr-defined]
    rect = page.locator("#canvas").bounding_box()  # type: ignore[attr-defined]
    x, y = rect["x"] + rect["width"] * 0.58, rect["y"] + rect["height"] * 0.52
    page.mouse.move(x, y)  # type: ignore[attr-defined]
    page.mouse.down()  # type: ignore[attr-defined]
    page.mouse.move(x + 150, y + 120, steps=6)  # type: ignore[attr-defined]
    page.mouse.up()  # type: ignore[attr-defined]
    page.wait_for_selector(".picker")  # type: ignore[attr-defined]
    page.keyboard.type("nod")  # type: ignore[attr-defined]
    page.keyboard.press("Enter")  # type: ignore[attr-defined]
    page.keyboard.press("Shift+Digit3")  # type: ignore[attr-defined]
    page.wait_for_function("document.getElementById('save-state').dataset.state === 'saved'")  # type: ignore[attr-defined]
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    for greys in (128, 96, 64, 48):  # the finest greys that keep the figure under FIGURE_KB
        shot.quantize(palette=grey_palette(shot, greys), dither=Image.Dither.NONE).save(path, optimize=True)
        if path.stat().st_size < FIGURE_KB * 1024:
            break
    print(f"screenshot: {path} ({path.stat().st_size // 1024} KB)")


def grey_palette(shot: object, greys: int) -> object:
    """A palette of ``greys`` evenly spaced grey levels (the radiograph) and the page's most used colours:
    an adaptive palette spends its entries on the image's noise and turns the few UI colours grey."""
    from PIL import Image

    flat = np.asarray(shot).reshape(-1, 3)
    coloured = flat[np.ptp(flat.astype(int), axis=1) > 6] // 8 * 8 + 4
    colours, counts = np.unique(coloured, axis=0, return_counts=True)
    top = colours[np.argsort(counts)[::-1][: 256 - greys]].astype(np.uint8)
    levels = np.linspace(0, 255, greys).round().astype(np.uint8)
    entries = np.concatenate([np.repeat(levels[:, None], 3, axis=1), top]).flatten().tolist()
    palette = Image.new("P", (1, 1))
    palette.putpalette(entries + [0] * (768 - len(entries)))
    return palette


def summary(name: str, ms: list[float]) -> float:
    p95 = float(np.percentile(ms, 95))
    print(f"{name:<34} n={len(ms):3d}  median {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms")
    print(f"    all: {' '.join(f'{v:.0f}' for v in sorted(ms)[-12:])}")
    return p95


def main() -> None:
    reason = browser_missing()
    if reason:
        print(f"skipped: {reason}")
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="cxrlab-bench-viewer-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        root = make_vindr(folder / "phantom", images=IMAGES, seed=1, size=SIZE).root
        db, cache = str(folder / "reading.db"), folder / "cache"
        reading_trial(db, cache, root, PASSWORD, readers=READERS, test_readers=READERS, split="test")
        print(
            f"{IMAGES} phantom DICOMs of {SIZE} px, {READERS} readers each ({time.perf_counter() - t0:.0f} s)"
        )
        with serve_process(db, cache) as (base, _), sync_playwright() as pw:
            warm = httpx.Client(base_url=base, timeout=120)
            warm.post("/api/login", json={"name": "r1", "password": PASSWORD})
            for task in warm.get("/api/projects/1/queue").json()["tasks"]:
                # Display data made once, as after an import (the "after the first view").
                warm.get(f"/api/images/{task['image_id']}")
                warm.get(f"/api/images/{task['image_id']}/pixels")
                warm.get(f"/api/images/{task['image_id']}/pixels", params={"level": 1})
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            idle = summary("next -> drawn, idle server", browse(browser, base))
            load = Load(base)
            load.thread.start()
            time.sleep(3)  # the sessions logged in and running
            loaded = summary(f"next -> drawn, {LOAD_SESSIONS} readers loading", browse(browser, base))
            load.stop.set()
            load.thread.join(timeout=120)
            cycles = np.array(load.latencies) * 1000
            summary("load: open image + save box", list(cycles))
            print(f"load: {len(cycles)} cycles, {load.errors} errors")
            verdict = "met" if loaded < 300 else "NOT met"
            print(f"p95 under load / idle: {loaded / idle:.2f}x; target p95 < 300 ms: {verdict}")
            browse(browser, base, shot=FIGURE)
            browser.close()


if __name__ == "__main__":
    main()
