"""The web console in a real browser: headless Chromium (Debian's `chromium`, from PATH)
driven by Playwright, against a running server.

Usage: python3 console.py <base_url> <api_key> <media_file> <screenshot.png>
Prints one JSON line {"ok": true, ...} (exit 0); any failed expectation raises.

The flow a user goes through, by keyboard where a keyboard user would:
paste the key (Tab, type, Enter), create a project, upload a file in 64 KiB chunks, pause it,
reload the page (the key stays in sessionStorage, the upload URL in localStorage), pick the
same file and resume from the server's offset, see the asset ready with its duration and its
charge, download it byte-identical, delete it; then start another upload and cancel it.
"""

import json
import shutil
import sys
import time

from playwright.sync_api import Page, Request, Route, expect, sync_playwright


def progress(page: Page) -> int:
    """The progress bar's value (read as an attribute: the page's CSP allows no eval)."""
    return int(float(page.locator("#progress").get_attribute("value") or "0"))


class Hold:
    """Lets the first `passing` PATCHes of an upload through, then holds the next one on the
    wire (unanswered) until released: the upload is reliably mid-way, mid-request."""

    def __init__(self, page: Page, passing: int) -> None:
        self.page = page
        self.passing = passing
        self.held: list[Route] = []
        page.route("**/v1/uploads/**", self.handle)

    def handle(self, route: Route, request: Request) -> None:
        if request.method == "PATCH":
            if self.passing == 0:
                self.held.append(route)
                return
            self.passing -= 1
        route.continue_()

    def wait_held(self) -> None:
        deadline = time.monotonic() + 30
        while not self.held:
            assert time.monotonic() < deadline, "no PATCH was held"
            self.page.wait_for_timeout(10)

    def release(self) -> None:
        self.page.unroute("**/v1/uploads/**", self.handle)
        for route in self.held:
            try:
                route.abort()
            except Exception:  # noqa: BLE001 - the browser may have aborted it already
                pass


def main(base: str, key: str, media: str, screenshot: str) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed on PATH (apt-get install chromium)")
    with open(media, "rb") as f:
        data = f.read()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_context(accept_downloads=True).new_page()
        page.goto(f"{base}/console?chunk=65536")

        page.keyboard.press("Tab")
        expect(page.locator("#key")).to_be_focused()
        page.keyboard.type(key)
        page.keyboard.press("Enter")
        expect(page.locator("#balance")).to_have_text("100")

        page.fill("#project-name", "console")
        page.click("#create-project")
        expect(page.locator("#project option")).to_have_count(1)

        hold = Hold(page, passing=4)
        page.set_input_files("#file", media)
        page.click("#start")
        hold.wait_held()
        page.click("#pause")
        expect(page.locator("#upload-status")).to_have_text("Paused")
        hold.release()
        paused_at = progress(page)
        assert 0 < paused_at < 100, paused_at

        page.reload()
        expect(page.locator("#balance")).to_have_text("100")
        page.set_input_files("#file", media)
        page.click("#start")
        expect(page.locator("#upload-status")).to_have_text(
            "Ready: 60.000 s, 1 credit charged", timeout=60_000
        )
        row = page.locator("#assets tr").first
        expect(row.locator("[data-field=state]")).to_have_text("ready", timeout=30_000)
        expect(row.locator("[data-field=duration]")).to_have_text("60.000 s")
        expect(row.locator("[data-field=charge]")).to_have_text("1 credit")
        expect(page.locator("#balance")).to_have_text("99")
        page.screenshot(path=screenshot, full_page=True)

        # The Download button navigates to the signed link: a download from this service's
        # disk, or a presigned object-store URL on another origin, which a browser may render
        # instead of saving. Either way the test takes the response the link gives and answers
        # the navigation 204, so the page stays.
        fetched: list[bytes] = []

        def is_download(url: str) -> bool:
            return "/v1/downloads/" in url or "X-Amz-Signature" in url

        def grab(route: Route) -> None:
            fetched.append(route.fetch().body())
            route.fulfill(status=204)

        page.route(is_download, grab)
        row.locator("[data-action=download]").click()
        deadline = time.monotonic() + 30
        while not fetched:
            assert time.monotonic() < deadline, "the download link was not followed"
            page.wait_for_timeout(20)
        page.unroute(is_download, grab)
        assert fetched[0] == data, "downloaded bytes differ"

        row.locator("[data-action=delete]").click()
        expect(page.locator("#assets tr")).to_have_count(0)

        hold = Hold(page, passing=1)
        page.set_input_files("#file", media)
        page.click("#start")
        hold.wait_held()
        page.click("#cancel")
        expect(page.locator("#upload-status")).to_have_text("Cancelled")
        hold.release()
        expect(page.locator("#assets tr")).to_have_count(0)
        browser.close()
    print(json.dumps({"ok": True, "paused_at_percent": paused_at}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4])
