"""TUS clients in a real browser: headless Chromium (Debian's `chromium`, from PATH) driven by
Playwright opens the test page (tests/browser/page/, served by the Rust test on its own
127.0.0.1 port: another origin than the API, so every upload request is a CORS request) and
uploads a file with tus-js-client or Uppy, their browser bundles from tests/interop/node_modules.

Usage: python3 tus_pages.py '<job JSON>'
  {"scenario": "tus-resume" | "uppy" | "direct" | "rejected",
   "page": "http://127.0.0.1:<port>/index.html", "upload_url": "...", "key": "sk_..." | null,
   "file": "<path>", "refused_url": "..." (direct only: bound to another origin)}
Prints one JSON line {"ok": true, ...} (exit 0); any failed expectation raises.

- tus-resume: tus-js-client is aborted (upload.abort()) once 42 % was sent; a new Upload on the
  same URL must HEAD, resume from the server's offset and finish.
- uppy: Uppy (@uppy/core + @uppy/tus) uploads to the pre-created URL given as the file's
  `tus.uploadUrl`.
- direct: the page has no key; tus-js-client uploads through the token URL. Then an upload URL
  bound to another origin (`cors_origin`) is refused by the browser's CORS check.
- rejected: a file that is not media, with the README's onShouldRetry: the page shows
  `unsupported_media_type` after exactly one PATCH.
"""

import json
import re
import shutil
import sys
from typing import Any
from urllib.parse import urlencode, urlsplit

from playwright.sync_api import Page, Request, expect, sync_playwright

TIMEOUT_MS = 90_000


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Network:
    """The requests the page sent to the API, as Chromium saw them (not the client's own
    account of them), and the page's console messages and uncaught errors."""

    def __init__(self, page: Page, api: str) -> None:
        self.api = api
        self.requests: list[Request] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        page.on("request", self.on_request)
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def on_request(self, request: Request) -> None:
        if origin_of(request.url) == self.api:
            self.requests.append(request)

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]


def open_page(page: Page, job: dict[str, Any], upload_url: str, **extra: str) -> None:
    query = {"upload": upload_url, **extra}
    if job.get("key"):
        query["key"] = job["key"]
    page.goto(f"{job['page']}?{urlencode(query)}")
    expect(page.locator("#status")).to_have_text("Ready", timeout=TIMEOUT_MS)
    page.set_input_files("#file", job["file"])
    page.click("#start")


def read(page: Page) -> tuple[list[dict[str, Any]], list[list[int]]]:
    return page.evaluate("() => [window.trace, window.progressEvents]")


def patch_answers(trace: list[dict[str, Any]], run: int) -> list[dict[str, Any]]:
    return [e for e in trace if e.get("run") == run and e.get("response_to") == "PATCH"]


def requests_of(trace: list[dict[str, Any]], run: int) -> list[dict[str, Any]]:
    return [e for e in trace if e.get("run") == run and "method" in e]


def check_finished(trace: list[dict[str, Any]], run: int, size: int) -> None:
    """The run's last PATCH answer is 204 at the file's size."""
    last = patch_answers(trace, run)[-1:]
    assert last and last[0]["status"] == 204 and int(last[0]["upload_offset"]) == size, (
        f"run {run}'s last PATCH answer {last} is not 204 at {size}: {trace}"
    )


def check_progress(page: Page, events: list[list[int]], size: int) -> None:
    assert events, "no progress event"
    assert events[-1] == [size, size], f"last progress event {events[-1]}, not {size}"
    value = float(page.locator("#progress").get_attribute("value") or "0")
    assert value == 100, f"the progress bar shows {value}"


def check_cross_origin(network: Network, page_origin: str, authorization: bool) -> None:
    """Every request to the API was a cross-origin one from the page (Chromium sent the page's
    `Origin`), with or without the key as expected. A request aborted on the wire (the
    aborted PATCH) is left out: Chromium never reports the headers it sent."""
    answered = [r for r in network.requests if r.failure is None]
    assert answered, "no request reached the API"
    for r in answered:
        headers = r.all_headers()
        assert headers.get("origin") == page_origin, f"{r.method} {r.url}: {headers}"
        assert ("authorization" in headers) == authorization, f"{r.method} {r.url}: {headers}"


def tus_resume(page: Page, network: Network, job: dict[str, Any], size: int) -> dict[str, Any]:
    open_page(page, job, job["upload_url"], abort_at="0.42")
    status = page.locator("#status")
    expect(status).to_have_text(re.compile(r"^Aborted at \d+ of \d+ bytes$"), timeout=TIMEOUT_MS)
    aborted_text = status.inner_text()
    sent_up_to = int(aborted_text.split()[2])
    assert 0 < sent_up_to < size, aborted_text
    trace, _ = read(page)
    acked = [int(e["upload_offset"]) for e in patch_answers(trace, 1) if e["status"] == 204]
    patches1 = [e for e in requests_of(trace, 1) if e["method"] == "PATCH"]

    page.click("#resume")
    expect(status).to_have_text("Done", timeout=TIMEOUT_MS)
    trace, events = read(page)
    run2 = requests_of(trace, 2)
    assert run2 and run2[0]["method"] == "HEAD", f"run 2 did not start with HEAD: {trace}"
    head = next((e for e in trace if e.get("run") == 2 and e.get("response_to") == "HEAD"), None)
    assert head and head["status"] == 200, f"run 2's HEAD answer: {head}"
    head_offset = int(head["upload_offset"])
    assert int(head["upload_length"]) == size, head
    patches2 = [e for e in run2 if e["method"] == "PATCH"]
    assert patches2, f"run 2 sent no PATCH: {trace}"
    resumed_from = int(patches2[0]["upload_offset"])
    assert resumed_from == head_offset, (
        f"run 2's first PATCH at {resumed_from}, HEAD said {head_offset}"
    )
    # Mid-file, and nothing acknowledged was lost. (Chromium reports upload progress after
    # the bytes left, so the server may hold more than the page had seen sent at the abort.)
    assert 0 < max(acked, default=0) <= head_offset < size, (
        f"HEAD offset {head_offset}, last acknowledged {max(acked, default=0)}, size {size}"
    )
    check_finished(trace, 2, size)
    check_progress(page, events, size)
    check_cross_origin(network, origin_of(job["page"]), authorization=True)
    return {
        "aborted": aborted_text,
        "run1_patches": len(patches1),
        "run1_last_acked": max(acked, default=0),
        "head_offset": head_offset,
        "resumed_from": resumed_from,
        "run2_patches": len(patches2),
        "progress_events": len(events),
    }


def uppy(page: Page, network: Network, job: dict[str, Any], size: int) -> dict[str, Any]:
    open_page(page, job, job["upload_url"], client="uppy")
    expect(page.locator("#status")).to_have_text("Done", timeout=TIMEOUT_MS)
    trace, events = read(page)
    sent = requests_of(trace, 1)
    assert sent and sent[0]["method"] == "HEAD", f"Uppy did not start with HEAD: {trace}"
    patches = [e for e in sent if e["method"] == "PATCH"]
    assert patches and patches[0]["upload_offset"] == "0", f"first PATCH: {trace}"
    assert all(e["authorization"] for e in sent), f"a request without the key: {trace}"
    check_finished(trace, 1, size)
    check_progress(page, events, size)
    check_cross_origin(network, origin_of(job["page"]), authorization=True)
    return {"patches": len(patches), "progress_events": len(events)}


def direct(page: Page, network: Network, job: dict[str, Any], size: int) -> dict[str, Any]:
    assert not job.get("key"), "a direct upload page holds no key"
    open_page(page, job, job["upload_url"])
    expect(page.locator("#status")).to_have_text("Done", timeout=TIMEOUT_MS)
    trace, events = read(page)
    sent = requests_of(trace, 1)
    patches = [e for e in sent if e["method"] == "PATCH"]
    assert patches, f"no PATCH: {trace}"
    assert not any(e["authorization"] for e in sent), f"a request with a key: {trace}"
    check_finished(trace, 1, size)
    check_progress(page, events, size)
    check_cross_origin(network, origin_of(job["page"]), authorization=False)

    # The same page with an upload URL bound to another origin: Chromium refuses to send it.
    network.requests.clear()
    network.console.clear()
    open_page(page, job, job["refused_url"])
    status = page.locator("#status")
    expect(status).to_have_text(re.compile(r"^Error: "), timeout=TIMEOUT_MS)
    trace, _ = read(page)
    assert not [e for e in trace if "response_to" in e], f"an answer reached the page: {trace}"
    assert any("blocked by CORS policy" in m for m in network.console), network.console
    return {
        "patches": len(patches),
        "progress_events": len(events),
        "refused_status": status.inner_text(),
    }


def rejected(page: Page, network: Network, job: dict[str, Any], size: int) -> dict[str, Any]:
    open_page(page, job, job["upload_url"])
    expect(page.locator("#status")).to_have_text(
        "Error: unsupported_media_type", timeout=TIMEOUT_MS
    )
    trace, _ = read(page)
    sent = [e["method"] for e in requests_of(trace, 1)]
    # One HEAD to resume the given URL, one PATCH refused; no retry after it.
    assert sent == ["HEAD", "PATCH"], f"the client sent {sent}: {trace}"
    answers = patch_answers(trace, 1)
    assert [a["status"] for a in answers] == [409], answers
    assert network.methods() == ["HEAD", "PATCH"], f"Chromium sent {network.methods()}"
    check_cross_origin(network, origin_of(job["page"]), authorization=True)
    return {"client_requests": sent, "network_requests": network.methods(), "size": size}


SCENARIOS = {"tus-resume": tus_resume, "uppy": uppy, "direct": direct, "rejected": rejected}


def main(job: dict[str, Any]) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit(
            "Debian's chromium is needed on PATH: apt-get install --no-install-recommends chromium"
        )
    scenario = SCENARIOS[job["scenario"]]
    with open(job["file"], "rb") as f:
        size = len(f.read())
    assert origin_of(job["page"]) != origin_of(job["upload_url"]), "the page must be cross-origin"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_context().new_page()
        page.set_default_timeout(TIMEOUT_MS)
        network = Network(page, origin_of(job["upload_url"]))
        try:
            report = scenario(page, network, job, size)
        except BaseException:
            print(f"page status: {page.locator('#status').inner_text()!r}", file=sys.stderr)
            print(f"console: {network.console}", file=sys.stderr)
            raise
        assert not network.errors, f"uncaught errors in the page: {network.errors}"
        browser.close()
    print(json.dumps({"ok": True, "scenario": job["scenario"], **report}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
