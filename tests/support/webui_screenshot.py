"""Screenshot of a real webui's sampler menu with our entries, for docs/images.

    A1111_ROOT=/path/to/webui python -m tests.support.webui_screenshot [a1111|forge|reforge] OUT.png

(from the repository root). Starts the webui as the real-host tests do
(tests/support/webui_harness.py), opens the txt2img tab in headless Chromium (Playwright
driving the system's /usr/bin/chromium, no browser download), opens the "Sampling method"
menu, scrolls to our entries and saves the picture. Needs ``pip install playwright`` (the
Python package only).
"""

from __future__ import annotations

import sys

from . import webui_harness as H

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def shoot(base: str, out: str, executable: str = "/usr/bin/chromium") -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(base + "/", wait_until="networkidle", timeout=300_000)
        page.wait_for_selector("#txt2img_sampling", timeout=300_000)
        box = page.locator("#txt2img_sampling input").first
        box.click()
        options = page.locator("#txt2img_sampling ul.options li")
        options.first.wait_for(timeout=60_000)
        last = page.locator("#txt2img_sampling ul.options li", has_text="(SS)").last
        last.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        boxes = [page.locator(sel).bounding_box() for sel in
                 ("#txt2img_sampling", "#txt2img_sampling ul.options", "#txt2img_scheduler")]
        x0 = max(0, min(b["x"] for b in boxes) - 16)
        y0 = max(0, min(b["y"] for b in boxes) - 16)
        x1 = max(b["x"] + b["width"] for b in boxes) + 16
        y1 = max(b["y"] + b["height"] for b in boxes) + 16
        page.screenshot(path=out, clip={"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0})
        browser.close()


def main(kind: str, out: str) -> None:
    reason = H.skip_reason(kind)
    if reason:
        raise SystemExit(reason)
    w = H.Webui(kind)
    try:
        w.start()
        shoot(w.base, out)
        print("saved", out)
    finally:
        w.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "a1111", sys.argv[2] if len(sys.argv) > 2 else "a1111_sampler_menu.png")
