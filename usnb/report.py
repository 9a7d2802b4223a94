"""The run contract: every notebook writes `metrics.json` to its output folder in one format."""
from __future__ import annotations

import html
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metrics import markdown_table
from .paths import atomic_write

METRIC_KEYS = ("acc", "sen", "spe", "pre", "f1", "auc", "ap")


def write_metrics(out_dir: str | Path, paper: str, profile: str, dataset: str, seed: int, seconds: float,
                  rows: dict[str, dict], claims: list[dict] | None = None,
                  not_trained: dict[str, str] | None = None) -> Path:
    """Write `{paper, profile, dataset, seed, seconds, rows: {ROW: {acc, ..., ap, acc_ci, ..., ap_ci}}, claims,
    not_trained}`.

    Metrics are fractions in [0, 1] (nan allowed where undefined, written as null); anything else is an error. A row
    from `usnb.metrics.held_out_metrics` carries `<metric>_ci: [low, high]` (95 %), written beside each metric (k-fold
    rows from `pooled_metrics` also `<metric>_fold_sd`); `claims`
    (`usnb.claims.judge` outputs) are written as they are, without the per-clip evidence; `not_trained`: {row: why
    this run could not train it} (the report prints the reasons under the paper's table).

    The per-clip evidence of each row (test labels, P(class 1), threshold, patient ids; what `usnb.claims.judge`
    compares) goes to `test_scores.json` beside it (`read_test_scores`), so that claims can be judged again with
    `usnb.claims.judge` (benchmarks/seed_spread.py does, over a batch's seeds). Each row's `intervals` (what its CIs
    take into account: clip or patient level) is written as it is.
    """
    clean = {}
    for name, metrics in rows.items():
        missing = [k for k in METRIC_KEYS if k not in metrics]
        if missing:
            raise ValueError(f"row {name!r} lacks {missing}; compute it with usnb.metrics.held_out_metrics")
        row = {}
        for k in METRIC_KEYS:
            v = float(metrics[k])
            if not math.isnan(v) and not 0.0 <= v <= 1.0:
                raise ValueError(f"row {name!r}: {k} = {v} is not a fraction in [0, 1] (percent given?)")
            row[k] = None if math.isnan(v) else v
        for k in METRIC_KEYS:
            if f"{k}_ci" in metrics:
                row[f"{k}_ci"] = [None if math.isnan(float(c)) else float(c) for c in metrics[f"{k}_ci"]]
            if f"{k}_fold_sd" in metrics:  # k-fold runs: the folds' spread (`usnb.metrics.pooled_metrics`)
                row[f"{k}_fold_sd"] = json_safe(float(metrics[f"{k}_fold_sd"]))
        if "intervals" in metrics:
            row["intervals"] = str(metrics["intervals"])
        clean[name] = row
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"paper": paper, "profile": profile, "dataset": dataset, "seed": int(seed),
              "seconds": round(float(seconds), 1), "rows": clean}
    if claims is not None:
        record["claims"] = [json_safe(c) for c in claims]
    if not_trained:
        record["not_trained"] = {str(k): str(v) for k, v in not_trained.items()}
    evidence = {name: {k: json_safe(np.asarray(m[k]).tolist()) for k in EVIDENCE_KEYS if k in m}
                for name, m in rows.items() if "scores" in m}
    if evidence:
        (out / "test_scores.json").write_text(json.dumps({"paper": paper, "seed": int(seed), "rows": evidence}))
    path = out / "metrics.json"
    path.write_text(json.dumps(record, indent=1))
    return path


EVIDENCE_KEYS = ("labels", "scores", "threshold", "margins", "groups")


def read_test_scores(run_dir: str | Path) -> dict[str, dict]:
    """{row: {labels, scores, threshold, margins?, groups?} as NumPy arrays} from a run's test_scores.json."""
    path = Path(run_dir) / "test_scores.json"
    if not path.is_file():
        raise ReportError(f"{path}: no per-clip test scores (runs before this version did not write them). Fix: run "
                          "the notebook again into that folder")
    rows = json.loads(path.read_text())["rows"]
    kinds = {"groups": str, "labels": int}
    return {name: {k: np.asarray(v, dtype=kinds.get(k, float)) for k, v in row.items()} for name, row in rows.items()}


def json_safe(value):
    """nan -> None, NumPy scalars -> floats, recursively (JSON has no nan)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        return None if isinstance(value, float) and math.isnan(value) else value
    if hasattr(value, "item"):
        return json_safe(value.item())
    return value


# ---------------------------------------------------------------- the batch report (usnb run --seeds ...)

FIGURES = ("roc", "tsne", "gradcam", "occlusion", "fraction", "reconstruction", "attention")  # shown first


FIGURE_WORDS = {"roc": "ROC curves", "tsne": "t-SNE", "gradcam": "Grad-CAM", "mae": "MAE", "ssl": "SSL",
                "simclr": "SimCLR", "vs": "against", "rows": "of the rows"}


def caption(stem: str) -> str:
    """A figure's file name in words: 'fig3d_gradcam' -> "Fig. 3d (the paper's): Grad-CAM", 'roc_rows' -> 'ROC
    curves rows'."""
    words = stem.split("_")
    figure = re.fullmatch(r"fig(\d+[a-z]?)", words[0])
    text = " ".join(FIGURE_WORDS.get(w, w) for w in (words[1:] if figure else words))
    return f"Fig. {figure.group(1)} (the paper's): {text}" if figure else text


class ReportError(Exception):
    """The report cannot be written: no such folder, no runs in it, or a file of the user's where it would go."""


@dataclass
class RunRecord:
    """One run folder of a batch: its status.json, parameters and (when it got that far) metrics.json. A run whose
    status.json or metrics.json cannot be read, or does not have the run contract's fields, is `damaged` (why)."""

    folder: Path
    status: dict
    metrics: dict | None
    damaged: str = ""

    @property
    def notebook(self) -> str:
        return Path(self.status.get("notebook", self.folder.name)).stem

    @property
    def seed(self):
        return self.status.get("parameters", {}).get("seed", "?")

    def figures(self) -> list[Path]:
        return sorted(self.folder.glob("*.png"))

    def data_warnings(self) -> list[str]:
        """The DataWarnings the run's notebook printed (run.log): what a loader skipped, counted, or doubted."""
        log = self.folder / "run.log"
        text = log.read_text(errors="replace") if log.is_file() else ""
        return [m.group(1).strip() for m in re.finditer(r"DataWarning: (.+)", text)]


def read_record(path: Path) -> tuple[dict | None, str]:
    """(the JSON object in `path`, "") or (None, what is wrong with the file)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        return None, f"{path.name} cannot be read ({err})"
    except json.JSONDecodeError as err:
        return None, f"{path.name} is not JSON, half-written or corrupt ({err})"
    return (record, "") if isinstance(record, dict) else (None, f"{path.name} holds a {type(record).__name__}, "
                                                                "not an object")


def status_problem(status: dict) -> str:
    """What status.json lacks of the run contract (`usnb.batch.execute` writes it), or ""."""
    kinds = {"ok": bool, "notebook": str, "parameters": dict, "seconds": (int, float), "error": (str, type(None))}
    for key, kind in kinds.items():
        if key in ("ok", "notebook") and key not in status:
            return f"status.json has no {key!r}"
        if key in status and not isinstance(status[key], kind):
            return f"status.json: {key} is {status[key]!r}, not {getattr(kind, '__name__', 'a number or text')}"
    return ""


def metrics_problem(m: dict) -> str:
    """What metrics.json lacks of the run contract (`write_metrics` writes it), or ""."""
    for key, kind in (("paper", str), ("profile", str), ("dataset", str), ("seed", int), ("rows", dict)):
        if not isinstance(m.get(key), kind) or isinstance(m.get(key), bool):
            return f"metrics.json: {key} is {m.get(key)!r}, not {kind.__name__}"
    number = lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))  # noqa: E731
    for name, row in m["rows"].items():
        if not isinstance(row, dict) or not all(number(row.get(k)) for k in METRIC_KEYS):
            return f"metrics.json: row {name!r} is not {{metric: number or null}}"
        for k, v in row.items():
            if k.endswith("_ci") and not (isinstance(v, list) and len(v) == 2 and all(map(number, v))):
                return f"metrics.json: row {name!r}: {k} is {v!r}, not [low, high]"
    if not isinstance(m.get("claims", []), list) or not all(isinstance(c, dict) for c in m.get("claims", [])):
        return "metrics.json: claims is not a list of objects"
    if not isinstance(m.get("not_trained", {}), dict):
        return "metrics.json: not_trained is not an object"
    return ""


def collect_runs(out: str | Path) -> list[RunRecord]:
    """Every run folder under `out` (a folder with status.json), sorted by notebook and seed; a run whose records
    are damaged is kept, marked `damaged`, without its metrics."""
    records = []
    for path in sorted(Path(out).rglob("status.json")):
        if any(part.startswith("rank") for part in path.relative_to(out).parts[:-1]):
            continue  # torchrun's other ranks
        status, why = read_record(path)
        why = why or status_problem(status)
        metrics = None
        if not why and (path.parent / "metrics.json").exists():
            metrics, why = read_record(path.parent / "metrics.json")
            why = why or metrics_problem(metrics)
        if why:
            keep = status if status is not None and not status_problem(status) else {}
            if not keep:  # named by its place: OUT/<notebook>/seed<k>
                seed = re.fullmatch(r"seed(\d+)", path.parent.name)
                keep = {"notebook": path.parent.parent.name if seed else path.parent.name,
                        "parameters": {"seed": int(seed.group(1))} if seed else {}}
            records.append(RunRecord(path.parent, {**keep, "ok": False, "error": f"damaged run: {why}"}, None, why))
        else:
            records.append(RunRecord(path.parent, status, metrics))
    return sorted(records, key=lambda r: (r.notebook, str(r.seed)))


def _table_of(name: str, tables: dict) -> list[tuple[str, str]]:
    """(table, row) pairs a metrics.json row belongs to: its name is a row of the paper's table, or 'Table k: row'."""
    hits = [(t, name) for t, rows in tables.items() if name in rows]
    for t in tables:
        if name.startswith(f"{t}: "):
            hits.append((t, name[len(t) + 2:]))
    return hits


def _not_trained(runs: list[RunRecord], trained: dict, tables: dict) -> dict[str | None, dict[str, str]]:
    """{paper's table (None: no table has the row): {row: why}} of the rows the runs could not train, leaving out those
    another run of the group trained."""
    notes: dict[str | None, dict[str, str]] = {}
    for r in runs:
        for name, why in r.metrics.get("not_trained", {}).items():
            if name not in trained:
                table = next((t for t, _ in _table_of(name, tables)), None)
                notes.setdefault(table, {})[name] = why
    return notes


def _not_trained_blocks(notes: dict[str, str]) -> list[Block]:
    """'ROW: not trained here. WHY.' for each note."""
    return [_p(Em(name), f": not trained here. {reason}.") for name, reason in notes.items()]


def _failed_blocks(r: "RunRecord", out: Path, pages: dict) -> list[Block]:
    """A failed or damaged run: where it stopped, its log and the notebook as far as it ran."""
    heading = f"{r.notebook}, seed {r.seed}: {'DAMAGED' if r.damaged else 'FAILED'}"
    where = (f"Its records are damaged: {r.damaged}; the run is left out of the tables. Fix: run it again "
             "(`usnb run` redoes it)." if r.damaged else f"It stopped at {r.status.get('error')}.")
    log, page = (r.folder / "run.log").relative_to(out), pages.get(r.folder)
    parts = [f"{where} Its log: ", Link(str(log), str(log))]
    if page:
        parts += ["; the notebook as far as it ran: ", Link(str(page.relative_to(out)), str(page.relative_to(out)))]
    return [_h(heading, style="failed"), _p(*parts, ".")]


def _section_blocks(s: dict, out: Path, pages: dict) -> list[Block]:
    """One paper's section: its tables beside the paper's, the claims, data warnings, key figures."""
    from .claims import CLAIMS_HEADER, CLAIMS_LEGEND, MIN_SEEDS, claims_table, summary

    heading = (f"{s['paper']}: {s['dataset']}, {s['profile']} profile, seed{'s' * (len(s['seeds']) > 1)} "
               f"{', '.join(map(str, s['seeds']))}")
    doc = [_h(heading)]
    if s.get("intervals"):
        doc.append(_p(f"95 % CIs on the test split: {'; '.join(s['intervals'])}.", style="caption"))
    for name, table in s["tables"]:
        cells = tuple(tuple("-" if c == "nan" else c for c in row) for row in table.cells())
        doc.append(_h(name, 3))
        if table.legend():
            doc.append(_p(table.legend(), style="caption"))
        doc.append(Block("table", header=tuple(table.header()), rows=cells))
        doc += _not_trained_blocks(s["not_trained"].get(name, {}))  # under the table the rows belong to
    doc += _not_trained_blocks(s["not_trained"].get(None, {}))
    if s["claims"]:
        intro = (f"The paper's claims, judged on our runs ({summary(s['claims'])}): delta = first row - second "
                 "row on the same test clips, mean over seeds; its interval adds the seeds' spread / k to the "
                 "test split's own sampling variance (every seed scores the same clips; at patient level where "
                 f"a patient holds several clips). Fewer than {MIN_SEEDS} seeds give provisional verdicts. The "
                 "paper's delta comes with the CI its own test size allows. A verdict on our data is about this "
                 "run's rows, not a judgement of the paper.")
        doc += [_h("The paper's claims", 3), _p(intro),
                Block("table", header=tuple(CLAIMS_HEADER), rows=tuple(map(tuple, claims_table(s["claims"])))),
                _p(CLAIMS_LEGEND, style="caption")]
    if s["warnings"]:
        doc += [_h("Data warnings", 3),
                Block("list", tuple(f"{text} ({n} of {s['runs']} runs)" for text, n in s["warnings"].items()))]
    figs = _key_figures(s["figures"])
    if figs:
        page, where = pages.get(s["folder"]), s["folder"].relative_to(out)
        every = ["(every figure: its ", Link("notebook", str(page.relative_to(out))), ")"] if page else []
        doc += [_p(f"Figures of {where} ", *every, ":"),
                Block("figures", figures=tuple((f.relative_to(out), caption(f.stem)) for f in figs))]
    return doc


def paper_sections(records: list[RunRecord]) -> list[dict]:
    """Per (paper, profile, dataset): each of the paper's tables with our mean(std) over seeds beside its numbers.

    The paper's numbers come from its recipe (`PAPER_TABLES`, labelled with `PAPER_DATA`); a row we trained that no
    table of the paper has goes to an 'ours only' table.
    """
    from .metrics import metrics_table, paper_vs_ours
    from .recipes import recipe

    groups: dict[tuple, list[RunRecord]] = {}
    for r in records:
        if r.metrics and r.status.get("ok"):
            m = r.metrics
            groups.setdefault((m["paper"], m["profile"], m["dataset"]), []).append(r)
    sections = []
    for (paper, profile, dataset), runs in sorted(groups.items()):
        module = recipe(paper)
        tables = getattr(module, "PAPER_TABLES", {}) if module else {}
        paper_data = getattr(module, "PAPER_DATA", "the paper's data") if module else "the paper's data"
        seeds = sorted({r.metrics["seed"] for r in runs})
        ours_label = f"{dataset}, {profile}, {len(seeds)} seed{'s' * (len(seeds) > 1)}"
        paper_size = getattr(module, "PAPER_TEST", None) if module else None
        per_row: dict[str, list[dict]] = {}
        for r in runs:
            for name, metrics in r.metrics["rows"].items():
                per_row.setdefault(name, []).append({k: (float("nan") if v is None else v) for k, v in metrics.items()})
        blocks, leftover = [], dict(per_row)
        for table, reported in tables.items():
            ours = {}
            for name, values in per_row.items():
                for t, row in _table_of(name, tables):
                    if t == table:
                        ours[row] = values
                        leftover.pop(name, None)
            if not ours:
                continue
            keys = paper_columns(reported)
            not_run = [{k: float("nan") for k in keys}]  # the paper's rows we did not train: shown as a dash
            rows = {n: ours.get(n, not_run) for n in reported} | ours
            blocks.append((table, paper_vs_ours(rows, reported, ours_label, paper_data, keys, paper_size)))
        if leftover:
            title = "ours only (no table of the paper has these rows)" if tables else "ours"
            blocks.append((title, metrics_table(leftover, keys=METRIC_KEYS)))
        sections.append({"paper": paper, "profile": profile, "dataset": dataset, "seeds": seeds, "tables": blocks,
                         "paper_data": paper_data, "figures": runs[0].figures(), "folder": runs[0].folder,
                         "claims": pooled_claims(module, runs), "notebook": runs[0].notebook,
                         "warnings": Counter(w for r in runs for w in dict.fromkeys(r.data_warnings())),
                         "runs": len(runs),
                         "intervals": sorted({m["intervals"] for r in runs for m in r.metrics["rows"].values()
                                              if isinstance(m.get("intervals"), str)}),
                         "not_trained": _not_trained(runs, per_row, tables)})
    return sorted(sections, key=lambda s: (s["notebook"], s["profile"], s["dataset"]))  # notebook order: 01_, 02_, ...


def paper_columns(reported: dict[str, dict]) -> list[str]:
    """The metrics a paper's table reports, in its own order: every key any of its rows has (a row whose cells were
    lost has fewer), e.g. MVCC Table 1's ACC, SEN, SPE, PRE, F1."""
    keys = []
    for row in sorted(reported.values(), key=len, reverse=True):  # the fullest row gives the order
        keys += [k for k in row if k in METRIC_KEYS and k not in keys]
    return keys or ["auc", "acc"]


def pooled_claims(module, runs: list[RunRecord]) -> list[dict]:
    """The paper's claims judged over the seeds of a batch: per-seed deltas from each run's metrics.json, pooled
    by `usnb.claims.judge_over_seeds`."""
    from .claims import judge_over_seeds

    def same(c: dict, claim) -> bool:  # by what it compares, not its wording (which may differ between versions)
        return all(c.get(k) == getattr(claim, k) for k in ("better", "worse", "metric", "kind", "margin"))

    out = []
    for claim in getattr(module, "CLAIMS", []) if module else []:
        per_seed = [c for r in runs for c in r.metrics.get("claims", []) if same(c, claim)]
        per_seed = [{**c, "delta": float("nan") if c.get("delta") is None else c["delta"],
                     "ci": [float("nan") if v is None else v for v in c.get("ci", [None, None])],
                     "test_ci": [float("nan") if v is None else v for v in c["test_ci"]] if c.get("test_ci") else None,
                     "paper_delta": float("nan") if c.get("paper_delta") is None else c["paper_delta"]}
                    for c in per_seed]
        out.append(judge_over_seeds(claim, per_seed))  # no run judged it: "not run", listed, not dropped
    return out


def _key_figures(figures: list[Path], limit: int = 4) -> list[Path]:
    """Up to `limit` figures, the kinds in FIGURES first; never a picture of a table (the report has the table)."""
    figures = [p for p in figures if not re.fullmatch(r"table\d*", p.stem)]
    ranked = sorted(figures, key=lambda p: next((i for i, f in enumerate(FIGURES) if f in p.stem), len(FIGURES)))
    return ranked[:limit]


class _Html(str):
    """HTML built here from escaped parts (`_link`): `_html_table` puts it in as it is; every other cell is text."""


def _href(path) -> str:
    """A relative path as an attribute value: %-quoted (spaces, '#', '?' and quotes in folder names), then escaped."""
    from urllib.parse import quote

    return html.escape(quote(str(path)))


def _link(path, text: str) -> _Html:

    return _Html(f"<a href='{_href(path)}'>{html.escape(text)}</a>")


def _html_table(header: list[str], rows: list[list[str]]) -> str:

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, _Html) else html.escape(str(c))}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def export_html(notebook: Path) -> Path | None:
    """The executed notebook as HTML beside it (nbconvert; a browser cannot show .ipynb), made once per version."""
    target = notebook.with_suffix(".html")
    if not notebook.is_file():
        return None
    if not target.exists() or target.stat().st_mtime < notebook.stat().st_mtime:
        from nbconvert import HTMLExporter

        try:
            body, _ = HTMLExporter().from_filename(str(notebook))
        except Exception:  # noqa: BLE001 - a half-written or damaged notebook: the report links the .ipynb only
            return None
        with atomic_write(target) as tmp:
            tmp.write_text(body, encoding="utf-8")
    return target


INTRO = ("Our numbers: mean(std) over seeds [95 % CI on the test clips, mean of each bound over seeds], in percent. "
         "The papers' numbers are theirs, on their own (often private) data, with the 95 % CI their own test size "
         "allows (AUC: Hanley-McNeil; ACC, SEN, SPE: Wilson). Above each table: which data each column group is on.")
STYLE = ("<meta name='viewport' content='width=device-width, initial-scale=1'>"  # phones: no zoomed-out page
         "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 12px}"
         ".scroll{overflow-x:auto}"  # a wide table scrolls on its own, the page keeps the screen's width
         "td:not(:first-child){white-space:nowrap}"  # '85.0 [80.1, 89.9]' on one line; row names wrap
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
         ".caption{font-style:italic;margin:4px 0}figure{display:inline-block;margin:6px;vertical-align:top}"
         "figure img{max-width:560px;width:100%;border:1px solid #eee}figcaption{font-size:12px}"
         ".failed{color:#a00}</style>")


MARK = "<!-- written by usnb report: rewritten by each `usnb report` and batch -->"


def written_by_usnb(path: Path) -> bool:
    """Whether a report.md, report.html or index.html is one usnb wrote (its mark, or the title earlier versions
    wrote), so that a report rewrites its own files and never the user's."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:2000]
    except OSError:
        return False
    return MARK in head or head.startswith("# usnb batch report") or \
        "<title>usnb batch report</title>" in head or "<title>runs</title>" in head and "<h1>Every run</h1>" in head


@dataclass(frozen=True)
class Link:
    """A link inside a paragraph: `text` pointing at the relative path `href`."""

    text: str
    href: Path | str


@dataclass(frozen=True)
class Em:
    """Emphasised text inside a paragraph (a row's name)."""

    text: str


@dataclass(frozen=True)
class Block:
    """One block of the report, written once and rendered to Markdown and to HTML (`render_markdown`,
    `render_html`), so the two files cannot drift apart.

    kind: "h" (`level`, `parts` = the heading text), "p" (`parts`: text, `Link`s, `Em`s; `style` "caption" is italic,
    "failed" marks a failed run's heading), "table" (`header`, `rows`), "list" (`parts`: one text per item) or
    "figures" (`figures`: (path, caption) pairs, each image a link to itself)."""

    kind: str
    parts: tuple = ()
    level: int = 2
    style: str = ""
    header: tuple = ()
    rows: tuple = ()
    figures: tuple = ()


def _inline_md(parts) -> str:
    return "".join(f"[{p.text}]({p.href})" if isinstance(p, Link) else f"*{p.text}*" if isinstance(p, Em)
                   else str(p) for p in parts)


def _inline_html(parts) -> str:
    return "".join(_link(p.href, p.text) if isinstance(p, Link) else f"<em>{html.escape(p.text)}</em>"
                   if isinstance(p, Em) else html.escape(str(p)) for p in parts)


def render_markdown(blocks: list[Block]) -> str:
    lines = []
    for b in blocks:
        if b.kind == "h":
            lines += ["#" * b.level + " " + _inline_md(b.parts), ""]
        elif b.kind == "p":
            text = _inline_md(b.parts)
            lines += [f"*{text}*" if b.style == "caption" else text, ""]
        elif b.kind == "table":
            lines += [markdown_table(b.header, b.rows), ""]
        elif b.kind == "list":
            lines += [*[f"* {item}" for item in b.parts], ""]
        elif b.kind == "figures":
            lines += [*[f"![{text}]({path})" for path, text in b.figures], ""]
    return "\n".join(lines)


def render_html(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        css = f" class='{b.style}'" if b.style else ""
        if b.kind == "h":
            out.append(f"<h{b.level}{css}>{_inline_html(b.parts)}</h{b.level}>")
        elif b.kind == "p":
            out.append(f"<p{css}>{_inline_html(b.parts)}</p>")
        elif b.kind == "table":
            out.append(_html_table(list(b.header), [list(r) for r in b.rows]))
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in b.parts) + "</ul>")
        elif b.kind == "figures":
            out.append("<div>" + "".join(
                f"<figure><a href='{_href(path)}'><img src='{_href(path)}' alt='{html.escape(text)}'></a>"
                f"<figcaption>{html.escape(text)}</figcaption></figure>" for path, text in b.figures) + "</div>")
    return "\n".join(out)


def _h(text: str, level: int = 2, style: str = "") -> Block:
    return Block("h", (text,), level=level, style=style)


def _p(*parts, style: str = "") -> Block:
    return Block("p", parts, style=style)


def write_report(out: str | Path, title: str = "usnb batch report") -> tuple[Path, Path]:
    """report.md and report.html (each paper's tables, ours beside the paper's, its claims, key figures; a section
    for each failed run saying where it failed) and index.html (every run with its status, time and files; each
    executed notebook also as HTML) in `out`. Returns (report.html, report.md)."""

    out = Path(out).expanduser().resolve()
    if not out.is_dir():
        raise ReportError(f"{out}: no such folder. Fix: pass the --out folder of a `usnb run` batch")
    records = collect_runs(out)
    if not records:
        raise ReportError(f"no runs under {out} (no status.json in any folder below it); nothing written. Fix: pass "
                          "the --out folder of a `usnb run` batch")
    report_md, report_html, index = out / "report.md", out / "report.html", out / "index.html"
    theirs = [p.name for p in (report_md, report_html, index) if p.exists() and not written_by_usnb(p)]
    if theirs:
        raise ReportError(f"{out} holds {', '.join(theirs)} that usnb did not write; nothing written (a report "
                          "never overwrites a file it did not write). Fix: move them, or run the batch into another "
                          "--out folder")
    pages = {r.folder: export_html(r.folder / f"{r.notebook}.ipynb") for r in records}
    sections = paper_sections(records)
    failed = [r for r in records if not r.status.get("ok")]
    counts = f"{len(records)} runs, {len(failed)} failed."
    doc = [_h(title, 1), _p(f"{counts} {INTRO} Every run: ", Link("index.html", "index.html"), ".")]
    # notebook order: a failed run's section stands where its notebook's would
    entries = [(s["notebook"], 0, s) for s in sections] + [(r.notebook, 1, r) for r in failed]
    for _, kind, entry in sorted(entries, key=lambda e: (e[0], e[1])):
        doc += _failed_blocks(entry, out, pages) if kind == 1 else _section_blocks(entry, out, pages)
    report_md.write_text(f"{MARK}\n{render_markdown(doc)}\n")
    report_html.write_text(f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}"
                           f"{MARK}\n{render_html(doc)}")
    rows = []
    for r in records:
        link = lambda p, text: _link(p.relative_to(out), text)  # noqa: E731
        page = pages.get(r.folder)
        files = ([link(page, "notebook")] if page else []) + [
            link(r.folder / f"{r.notebook}.ipynb", "ipynb"), link(r.folder / "parameters.json", "parameters"),
            link(r.folder / "environment.json", "environment"), link(r.folder / "run.log", "log")]
        if r.metrics:
            files.append(link(r.folder / "metrics.json", "metrics"))
        files += [link(f, f.stem) for f in r.figures()]
        rows.append([r.notebook, str(r.seed), "ok" if r.status.get("ok") else f"FAILED: {r.status.get('error')}",
                     f"{r.status.get('seconds', 0):.0f}", _Html(" ".join(files))])
    index.write_text(
        f"<!doctype html><meta charset='utf-8'><title>runs</title>{STYLE}{MARK}<h1>Every run</h1>"
        f"<p><a href='report.html'>report</a></p>"
        + _html_table(["notebook", "seed", "status", "seconds", "files"], rows))
    return report_html, report_md
