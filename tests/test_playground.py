"""The playground page at / : self-contained, and driven end to end in headless Chromium.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (``make install`` installs
them when run as root) and the ``selenium`` package (test extras); it is skipped, saying so, only
when the browser or its driver is absent. Chromium runs with no network features and a fresh
profile, and the page loads nothing but this server.
"""

from __future__ import annotations

import re
import shutil
from importlib import resources

import httpx
import openai
import pytest

from ponder.serve import Running, ServeConfig, create_app
from ponder.testing import tiny_engine

PAGE = resources.files("ponder.serve").joinpath("static/index.html").read_text(encoding="utf-8")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def test_page_is_self_contained():
    # no CDN: no absolute URL in src/href/fetch/import, no <link rel=stylesheet>, no external script
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", PAGE, re.I)
    assert not re.search(r"""(fetch|import)\s*\(\s*["'](https?:)?//""", PAGE)
    assert "<link" not in PAGE.lower() and not re.search(r"<script[^>]+src", PAGE, re.I)
    assert 'id="reasoning"' in PAGE and 'id="answer"' in PAGE and "<details" in PAGE


@pytest.fixture(scope="module")
def server():
    with Running(create_app(tiny_engine(), ServeConfig(log_requests=False), "tiny")) as s:
        yield s


def test_page_is_served_at_root(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and r.text == PAGE


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("headless Chromium is not installed (as root: apt-get install chromium chromium-driver, "
                    "which `make install` does)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _run(browser, url: str, question: str, effort: str, strategy: str = "", budget: int | None = None,
         max_tokens: int = 8, n: int = 3) -> dict:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(url + "/")
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "model").text == "tiny")
    q = browser.find_element(By.ID, "question")
    q.clear()
    q.send_keys(question)
    Select(browser.find_element(By.ID, "effort")).select_by_value(effort)
    if budget is not None:
        box = browser.find_element(By.ID, "budget")
        box.clear()
        box.send_keys(str(budget))
    Select(browser.find_element(By.ID, "strategy")).select_by_value(strategy)
    for field, value in (("max-tokens", max_tokens), ("temperature", 0), ("n", n)):
        el = browser.find_element(By.ID, field)
        el.clear()
        el.send_keys(str(value))
    browser.find_element(By.ID, "ask").click()
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "status").text in ("done", "stopped")
                                     or d.find_element(By.ID, "status").text.startswith("error"))
    text = {k: browser.find_element(By.ID, k).get_attribute("textContent")
            for k in ("status", "reasoning", "answer", "stats", "thinking-tokens")}
    return text


def test_playground_streams_thinking_and_answer_into_their_places(browser, server):
    got = _run(browser, server.url, "What is 17 + 25?", "budget", budget=20, max_tokens=8)
    assert got["status"] == "done", got
    # the same request through the API: the page shows exactly its reasoning and its answer
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    r = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "What is 17 + 25?"}],
                                  max_tokens=8, temperature=0, extra_body={"thinking": {"type": "enabled",
                                                                                        "budget_tokens": 20}})
    assert got["reasoning"] == r.choices[0].message.model_extra["reasoning_content"] != ""
    assert got["answer"] == r.choices[0].message.content != ""
    # the budget's 20 tokens and the forced "\n</think>" (2 tokens)
    assert "22 reasoning" in got["stats"] and "8 answer" in got["stats"] and "time:" in got["stats"]
    assert got["thinking-tokens"] == "(22 tokens)"

    from selenium.webdriver.common.by import By

    panel = browser.find_element(By.ID, "thinking")
    browser.find_element(By.CSS_SELECTOR, "#thinking summary").click()  # the panel collapses
    assert panel.get_attribute("open") is None


def test_playground_strategy_and_no_thinking(browser, server):
    got = _run(browser, server.url, "What is 2 + 2?", "low", strategy="majority", max_tokens=4, n=3)
    assert got["status"] == "done" and "majority over 3 samples" in got["stats"] and got["answer"]
    got = _run(browser, server.url, "What is 2 + 2?", "none", max_tokens=4)
    assert got["status"] == "done" and got["reasoning"] == "" and got["answer"] and "0 reasoning" in got["stats"]
