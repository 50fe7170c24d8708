"""The MLflow UI on our store, in a real headless Chromium: the sweep's runs table with its
children (opened at the URL a sweep prints), a child's val_loss chart, and the analysis run's
scaling_N.png. Screenshots go to the test's directory (kept by pytest under its basetemp)."""

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import tinygpt_cli
from tests.services import mlflow_server

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# The flags a sandboxed CI machine needs: no GPU, no sandbox, no calls home.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
]


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and DRIVER.exists()):
        pytest.skip(
            "needs Debian's chromium and chromium-driver (apt-get install chromium "
            "chromium-driver; .ci/run installs them)"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, sweep_store: Path, cache_dir: Path) -> dict:
    """A copy of the shared sweep's store (4 sizes x 2 seeds) with an analysis of it, made as a
    user would; the URLs the sweep and the analysis print."""
    cwd = tmp_path_factory.mktemp("ui-store")
    shutil.copy(sweep_store / "mlflow.db", cwd / "mlflow.db")  # artifacts stay where they were
    analysis = tinygpt_cli("fit.bootstrap=50", cwd=cwd, cache_dir=cache_dir, app="tinygpt.analyze")
    assert analysis.returncode == 0, analysis.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tinygpt").experiment_id
    runs = client.search_runs([exp])
    analysis_page = re.search(
        r"http://127\.0\.0\.1:5000/(#/experiments/\S+)", analysis.stdout
    ).group(1)
    # What the sweep printed when it ended (tests/test_cli.py checks that it does).
    page = f"#/experiments/{exp}/runs?workflowType=machine_learning"
    return {"cwd": cwd, "page": page, "analysis_page": analysis_page, "runs": runs}


def wait_for(driver, find, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while True:
        found = find()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out: {driver.current_url}"
        time.sleep(0.5)


def test_the_ui_shows_the_sweep_its_children_a_chart_and_the_analysis_figure(
    browser, store, tmp_path
):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    parent = next(r for r in store["runs"] if r.data.tags.get("sweep") == "true")
    children = [
        r
        for r in store["runs"]
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
        and r.data.tags.get("kind") != "analysis"
    ]
    assert len(children) == 8
    with mlflow_server(f"sqlite:///{store['cwd'] / 'mlflow.db'}", store["cwd"], "ui") as uri:
        # 1. The URL the sweep printed opens the runs table, the sweep in it; expand it.
        browser.get(f"{uri}/{store['page']}")
        link = wait_for(browser, lambda: browser.find_elements(By.LINK_TEXT, parent.info.run_name))
        row = link[0].find_element(By.XPATH, "./ancestor::*[@role='row'][1]")
        row.find_element(
            By.CSS_SELECTOR, "button[data-component-id*='runnamecellrenderer']"
        ).click()
        for child in children:
            wait_for(
                browser,
                lambda c=child: browser.find_elements(
                    By.CSS_SELECTOR, f"[role='row'][row-id='{c.info.run_id}']"
                ),
            )
        assert "Model training" in browser.find_element(By.TAG_NAME, "body").text
        browser.save_screenshot(str(tmp_path / "1-runs-table.png"))

        # 2. A child's val_loss chart renders (plotly draws it as an svg).
        exp = parent.info.experiment_id
        browser.get(
            f"{uri}/#/experiments/{exp}/runs/{children[0].info.run_id}/model-metrics"
            "?workflowType=machine_learning"
        )
        search = wait_for(
            browser,
            lambda: browser.find_elements(
                By.CSS_SELECTOR, "input[placeholder*='Search metric charts']"
            ),
        )
        search[0].send_keys("val_loss")

        def val_loss_chart() -> list:
            """The card titled val_loss once plotly has drawn its plot in it (the card: the
            nearest ancestor of the title holding exactly one plot)."""
            try:
                titles = browser.find_elements(By.XPATH, "//*[normalize-space(text())='val_loss']")
                for title in (t for t in titles if t.is_displayed()):
                    # ancestors come root first: walk them from the title up
                    for box in reversed(title.find_elements(By.XPATH, "./ancestor::*")):
                        if box.find_elements(By.CSS_SELECTOR, ".js-plotly-plot svg.main-svg"):
                            owners = box.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
                            return [box] if len(owners) == 1 else []
            except StaleElementReferenceException:  # React re-rendered under us: look again
                pass
            return []

        wait_for(browser, val_loss_chart)
        browser.save_screenshot(str(tmp_path / "2-val-loss-chart.png"))

        # 3. The analysis run's scaling_N.png displays in its artifacts.
        run_page = store["analysis_page"].split("?")[0]
        browser.get(f"{uri}/{run_page}/artifacts/scaling_N.png?workflowType=machine_learning")

        def shown_images() -> list:
            imgs = browser.find_elements(By.TAG_NAME, "img")
            return [
                i
                for i in imgs
                if browser.execute_script("return arguments[0].naturalWidth", i) > 400
            ]

        assert wait_for(browser, shown_images)
        browser.save_screenshot(str(tmp_path / "3-analysis-figure.png"))

        # 4. The analysis run's description is the report it printed (MLflow renders the note).
        # (the store may hold an earlier analysis of the same sweep, under the same name)
        analysis_id = run_page.rsplit("/", 1)[1]
        analysis = next(r for r in store["runs"] if r.info.run_id == analysis_id)
        report_line = next(
            ln.strip() for ln in analysis.data.tags["mlflow.note.content"].splitlines()
            if ln.strip().startswith("L(N): L(N) =")
        )  # fmt: skip

        def body_has(text: str):
            return lambda: text in browser.find_element(By.TAG_NAME, "body").text

        browser.get(f"{uri}/{run_page}?workflowType=machine_learning")
        wait_for(browser, body_has(report_line))
        browser.save_screenshot(str(tmp_path / "4-analysis-description.png"))

        # 5. The sweep's description lists its jobs and links the analysis: follow the link.
        browser.get(
            f"{uri}/#/experiments/{exp}/runs/{parent.info.run_id}?workflowType=machine_learning"
        )
        wait_for(browser, body_has("tinygpt -m"))
        # A long description is shown folded: unfold it as a reader would.
        more = wait_for(browser, lambda: browser.find_elements(By.XPATH, "//*[text()='Show more']"))
        more[0].click()
        wait_for(browser, body_has("Analyses of this sweep"))
        for child in children:  # each job by what the sweep varied
            seed, model = child.data.params["seed"], child.data.params["model.d_model"]
            wait_for(browser, body_has(f"model=d{model} seed={seed}"))
        browser.save_screenshot(str(tmp_path / "5-sweep-description.png"))
        link = wait_for(
            browser, lambda: browser.find_elements(By.CSS_SELECTOR, f"a[href$='/{analysis_id}']")
        )
        assert link[0].text == analysis.info.run_name
        # MLflow opens a description's links in a new tab: follow the href in this one.
        browser.get(link[0].get_attribute("href"))
        wait_for(browser, body_has(report_line))
    shots = ("1-runs-table.png", "2-val-loss-chart.png", "3-analysis-figure.png",
             "4-analysis-description.png", "5-sweep-description.png")  # fmt: skip
    for name in shots:
        assert (tmp_path / name).stat().st_size > 20_000
