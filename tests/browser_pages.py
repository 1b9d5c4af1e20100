"""Headless Chromium for the site and slide tests: Debian's chromium driven by Playwright, with no network.

Every request that is not for the page's own folder (the local HTTP server or file://) is aborted and counted, so a
CDN link anywhere in a page fails the test rather than loading in the background.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "_build" / "screenshots"  # git-ignored; CI leaves it in its clone for a person to look at
CHROMIUM_FLAGS = [  # a browser that starts no background traffic of its own on a machine without a network
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--font-render-hinting=none",
]


def chromium_path() -> str:
    """The system Chromium (`make browser` installs Debian's); $COURSE_CHROMIUM names another."""
    for candidate in (os.environ.get("COURSE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    message = "no Chromium on this machine: run `make browser` (Debian's chromium) or set COURSE_CHROMIUM"
    if os.environ.get("CI"):
        pytest.fail(message)  # CI installs it through `make test`; a missing browser there is a failure
    pytest.skip(message)


@contextmanager
def browser():
    """A Playwright browser context on the system Chromium, its network limited to 127.0.0.1 and file://."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        try:
            context = chromium.new_context(viewport={"width": 1280, "height": 800}, service_workers="block")
            context.blocked = []

            def only_local(route):
                url = route.request.url
                if url.startswith(("http://127.0.0.1:", "file://", "data:", "blob:")):
                    route.continue_()
                else:
                    context.blocked.append(url)
                    route.abort("internetdisconnected")

            context.route("**/*", only_local)
            yield context
        finally:
            chromium.close()


WAIT_FOR_MATHJAX = """() => new Promise(done => {
  if (!window.MathJax || !MathJax.Hub) { done('no MathJax'); return; }
  const timer = setTimeout(() => done('timed out'), 30000);
  const finish = () => MathJax.Hub.Queue(() => { clearTimeout(timer); done('typeset'); });
  if (MathJax.isReady) { finish(); } else { MathJax.Hub.Register.StartupHook('End', finish); }
})"""

PAGE_FACTS = r"""() => {
  const skip = new Set(['SCRIPT', 'STYLE', 'PRE', 'CODE', 'TEXTAREA']);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode: node => {
      for (let el = node.parentElement; el; el = el.parentElement) {
        if (skip.has(el.tagName) || el.classList.contains('highlight')) return NodeFilter.FILTER_REJECT;
      }
      return NodeFilter.FILTER_ACCEPT;
    }
  });
  const raw = [];
  const inlineTex = /\$[^$\n]*\\[A-Za-z]+[^$\n]*\$/;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent;
    if (text.includes('$$') || text.includes('\\begin{') || inlineTex.test(text)) raw.push(text.trim().slice(0, 80));
  }
  return {
    raw_tex: raw,
    math: document.querySelectorAll('.MathJax_SVG, .MathJax_SVG_Display, .MathJax, mjx-container').length,
    math_errors: (document.body.innerText.match(/Math Processing Error/g) || []).length,
    images: document.images.length,
    broken_images: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)
      .map(i => (i.getAttribute('src') || '(no src) ' + i.id).slice(0, 80)),
  };
}"""


def source_has_math(text: str) -> bool:
    """Whether notebook or markdown text holds TeX that MathJax must typeset."""
    return bool(re.search(r"\$\$|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$", text))


def load(context, url: str, screenshot: Path | None = None) -> tuple:
    """(page, facts): the page loaded and typeset, with its console errors, failed and blocked requests."""
    page = context.new_page()
    errors, failed = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: failed.append(f"{r.url[:120]} ({r.failure})"))
    page.on("response", lambda r: failed.append(f"{r.url[:120]} (HTTP {r.status})") if r.status >= 400 else None)
    before = len(context.blocked)
    page.goto(url, wait_until="load", timeout=60_000)
    typeset = page.evaluate(WAIT_FOR_MATHJAX)
    page.wait_for_load_state("networkidle", timeout=30_000)
    facts = page.evaluate(PAGE_FACTS)
    facts |= {"typeset": typeset, "console_errors": errors, "failed_requests": failed,
              "blocked": context.blocked[before:]}
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot))
    return page, facts


def problems(facts: dict, expect_math: bool) -> list[str]:
    """What a reader would see broken on a loaded page, in words (empty when nothing is)."""
    found = []
    if facts["blocked"]:
        found.append(f"requests that left the machine: {facts['blocked'][:5]}")
    if facts["failed_requests"]:
        found.append(f"failed requests: {facts['failed_requests'][:5]}")
    if facts["console_errors"]:
        found.append(f"console errors: {facts['console_errors'][:5]}")
    if facts["broken_images"]:
        found.append(f"images that did not load: {facts['broken_images'][:5]}")
    if facts["raw_tex"]:
        found.append(f"TeX left raw on the page: {facts['raw_tex'][:5]}")
    if facts["math_errors"]:
        found.append(f"{facts['math_errors']} MathJax processing errors")
    if expect_math and (facts["typeset"] != "typeset" or facts["math"] == 0):
        found.append(f"maths not rendered (MathJax: {facts['typeset']}, {facts['math']} rendered elements)")
    return found


def build(kind: str, tmp_path_factory) -> Path:
    """Run `publish/build.py <kind>` (site or slides) into a fresh temporary folder, as `make <kind>` does; return
    the folder."""
    out = tmp_path_factory.mktemp(kind) / kind
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "publish" / "build.py"), kind, "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"{kind} built in {time.perf_counter() - start:.1f} s: {done.stdout.strip()}")
    return out
