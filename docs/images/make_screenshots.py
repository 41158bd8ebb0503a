"""Take the dashboard screenshots of docs/dashboard.md from a running dashboard.

    hpt dashboard &                                   # over storage holding an ASHA and a PBT experiment
    python docs/images/make_screenshots.py http://127.0.0.1:8080/

It picks the newest finished adaptive_asha and pbt experiments (or the ids given with --asha / --pbt) and
saves docs/images/dashboard-experiments.png, dashboard-asha.png, dashboard-pbt.png and dashboard-trial.png
(the ASHA experiment's best trial). Needs the `playwright` package and Debian's Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

IMAGES = Path(__file__).parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1280, "height": 600}


def newest_finished(experiments: list[dict], searcher: str) -> dict:
    matching = [entry for entry in experiments if entry["searcher"] == searcher and entry["state"] == "COMPLETED"]
    if not matching:
        raise SystemExit(f"the dashboard has no finished {searcher} experiment; run one or pass its id")
    return max(matching, key=lambda entry: entry["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the dashboard's address, e.g. http://127.0.0.1:8080/")
    parser.add_argument("--asha", type=int, help="id of the ASHA experiment to show")
    parser.add_argument("--pbt", type=int, help="id of the PBT experiment to show")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium executable")
    arguments = parser.parse_args()
    base = arguments.url.rstrip("/")
    with urllib.request.urlopen(f"{base}/api/v1/experiments") as response:
        experiments = json.load(response)["experiments"]
    asha = arguments.asha or newest_finished(experiments, "adaptive_asha")["id"]
    pbt = arguments.pbt or newest_finished(experiments, "pbt")["id"]
    with urllib.request.urlopen(f"{base}/api/v1/experiments/{asha}") as response:
        best_trial = json.load(response)["best_trial_id"]
    shots = {"experiments": "#/", "asha": f"#/experiments/{asha}", "pbt": f"#/experiments/{pbt}",
             "trial": f"#/trials/{best_trial}"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=arguments.chromium, args=CHROMIUM_ARGS)
        for name, route in shots.items():
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{base}/{route}")
            page.wait_for_selector("[data-refreshes]")
            page.wait_for_timeout(500)  # let Plotly finish its transitions
            path = IMAGES / f"dashboard-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            print(f"saved {path}")
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
