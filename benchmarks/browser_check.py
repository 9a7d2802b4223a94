"""Look at JupyterLab and a batch report as a user does: headless Chromium, servers on 127.0.0.1 only.

    apt-get install chromium && python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    make demo   # (or any `usnb run` batch): the report to look at
    /tmp/pw/bin/python benchmarks/browser_check.py . --runs runs/demo --shots /tmp/shots
    /tmp/pw/bin/python benchmarks/browser_check.py . --smoke     # CI (.ci/run): notebook 03's explorer only

In JupyterLab (the repository's .venv) it runs each paper notebook up to its explorer, checks that the explorer shows
one figure and that moving its first slider redraws that one figure, and opens notebook 03's link to its data card.
In the report it reads the sections and the figures' sizes and opens an executed notebook's HTML. Screenshots go to
SHOTS (keep them out of the repository); it prints what it saw as JSON and exits 1 if a check failed.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from playwright.sync_api import sync_playwright

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("repo", type=Path)
ap.add_argument("--runs", type=Path, help="a batch folder with report.html (none: the report is not looked at)")
ap.add_argument("--shots", type=Path, default=Path("/tmp/usnb-shots"))
ap.add_argument("--smoke", action="store_true", help="only notebook 03's explorer and its data-card link")
args = ap.parse_args()
repo, runs, shots = args.repo.resolve(), args.runs, args.shots
NOTEBOOKS = ["03_kganet"] if args.smoke else ["01_mvcc", "02_clman", "03_kganet", "04_lung_ssl"]
shots.mkdir(parents=True, exist_ok=True)
TOKEN = "usnbcheck"
venv = repo / ".venv/bin"
lab = subprocess.Popen([str(venv / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", "--port=8899",
                        f"--ServerApp.root_dir={repo}", "--LabApp.default_url=/lab/tree/notebooks",
                        f"--IdentityProvider.token={TOKEN}"] + (["--allow-root"] if os.geteuid() == 0 else []), stdout=open(shots / "lab.log", "w"), stderr=subprocess.STDOUT,
                       env={**os.environ, "USNB_HEADLESS": ""})
http = subprocess.Popen([sys.executable, "-m", "http.server", "8765", "--bind", "127.0.0.1", "-d", str(runs)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if runs else None
for _ in range(60):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:8899/api/status?token={TOKEN}"); break
    except Exception:
        time.sleep(1)
results = {}


def explorer_index(nb: Path) -> int:
    cells = json.loads(nb.read_text())["cells"]
    return next(i for i, c in enumerate(cells) if "plots.explorer(" in "".join(c["source"]))


def images(cell):
    return [hashlib.sha1(i.get_attribute("src").encode()).hexdigest()[:8] for i in cell.locator("img").all()]


try:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:8899/lab?token={TOKEN}")
        page.wait_for_selector(".jp-DirListing-item", timeout=60000)
        time.sleep(2)
        results["default url"] = page.url
        results["file browser"] = [e.inner_text() for e in page.locator(".jp-DirListing-itemText").all()]
        page.screenshot(path=shots / "lab_start.png")
        for name in NOTEBOOKS:
            nb = repo / "notebooks" / f"{name}.ipynb"
            target = explorer_index(nb)
            page.goto(f"http://127.0.0.1:8899/lab/tree/notebooks/{name}.ipynb?reset&token={TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60000)
            time.sleep(3)
            page.screenshot(path=shots / f"{name}_opened.png")
            for button in page.locator(".jp-Dialog button.jp-mod-accept").all():  # a kernel dialog, if any
                button.click()
            cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
            cells.nth(0).click()
            page.keyboard.press("Escape")
            for _ in range(target + 1):
                page.keyboard.press("Shift+Enter")
                time.sleep(0.3)
            cell = cells.nth(target)
            deadline = time.time() + 600
            while time.time() < deadline:
                prompt = cell.locator(".jp-InputArea-prompt").inner_text()
                if prompt.strip() not in ("[*]:", "[ ]:", ""):
                    break
                time.sleep(2)
            time.sleep(4)
            cell.scroll_into_view_if_needed()
            before = images(cell)
            errors = [e.inner_text()[:300] for e in page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']").all()]
            cell.screenshot(path=shots / f"{name}_explorer_before.png")
            readout = cell.locator(".widget-readout").first
            readout.click()
            page.keyboard.press("Control+A")
            value = {"01_mvcc": "0.8", "02_clman": "20", "03_kganet": "4", "04_lung_ssl": "7"}[name]
            page.keyboard.type(value)
            page.keyboard.press("Enter")
            time.sleep(8)
            after = images(cell)
            cell.screenshot(path=shots / f"{name}_explorer_after.png")
            results[name] = {"prompt": prompt, "figures before": before, "figures after": after,
                             "stderr": errors[:3]}
            if name == "03_kganet":
                cells_json = json.loads(nb.read_text())["cells"]
                k = next(i for i, c in enumerate(cells_json) if "data_cards/phantom.md" in "".join(c["source"]))
                cells.nth(k).scroll_into_view_if_needed()
                time.sleep(2)
                link = page.locator("a", has_text="data_cards/phantom.md").first
                results['data card href'] = link.get_attribute('href')
                link.scroll_into_view_if_needed()
                link.click()
                time.sleep(4)
                tabs = [t.inner_text() for t in page.locator(".lm-TabBar-tabLabel").all()]
                results["data card link"] = {"tabs": [t for t in tabs if t],
                                             "opened": page.locator("h1", has_text="Data card").count() > 0}
                page.screenshot(path=shots / "03_data_card_link.png")
            page.evaluate("fetch('/api/sessions?token=" + TOKEN + "').then(r => r.json()).then(s => s.forEach(x => "
                          "fetch('/api/sessions/' + x.id + '?token=" + TOKEN + "', {method: 'DELETE'})))")
            time.sleep(2)
        if runs:  # the report as a reader opens it
            rp = browser.new_page(viewport={"width": 1280, "height": 900})
            rp.goto("http://127.0.0.1:8765/report.html")
            rp.screenshot(path=shots / "report_first_screen.png")
            results["report h2"] = [h.inner_text() for h in rp.locator("h2").all()]
            results["report imgs"] = [(i.get_attribute("src"), i.evaluate("e => e.naturalWidth"), i.evaluate("e => e.clientWidth"))
                                      for i in rp.locator("img").all()][:6]
            h = rp.locator("h2", has_text="kganet").first
            h.scroll_into_view_if_needed()
            rp.evaluate("window.scrollBy(0, -20)")
            rp.screenshot(path=shots / "report_kganet_section.png")
            rp.goto("http://127.0.0.1:8765/index.html")
            rp.screenshot(path=shots / "report_index.png")
            link = rp.locator("a", has_text="notebook").first
            href = link.get_attribute("href")
            rp.goto("http://127.0.0.1:8765/" + href)
            time.sleep(2)
            rp.screenshot(path=shots / "report_notebook_html.png")
            results["notebook html"] = {"href": href, "title": rp.title(), "n_imgs": rp.locator("img").count()}
        browser.close()
finally:
    lab.terminate()
    if http:
        http.terminate()
    print(json.dumps(results, indent=1))
seen = {name: results.get(name, {}) for name in NOTEBOOKS}  # a notebook that stopped early has no entry
failed = [name for name, r in seen.items() if len(r.get("figures before", [])) != 1
          or len(r.get("figures after", [])) != 1 or r["figures before"] == r["figures after"]]
if not results.get("data card link", {}).get("opened"):
    failed.append("data card link")
print("failed:", failed or "none")
sys.exit(1 if failed else 0)
