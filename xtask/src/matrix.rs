//! `cargo xtask matrix plan|run|report`: the compatibility matrix of `stack.toml` (`[matrix]`).
//!
//! - `plan` lists the cells of a subset (`pr` or `full`) and whether this machine can run each.
//! - `run` runs the cells it can (the compose tier; arm64 under qemu) with `cargo xtask e2e`,
//!   writes a `not-run.json` with the reason for each other cell, then builds the report.
//! - `report` builds the report from a folder of e2e reports gathered elsewhere (a CI run's
//!   artifacts), the same way.
//!
//! The folder layout, shared with `cargo xtask gate`: `cells/<cell id>/report.json` (with its
//! `summary.md`, `junit.xml`, `report.html`) or `cells/<cell id>/not-run.json`. `report` finds
//! `report.json` and `not-run.json` files at any depth and matches them to cells by their axes,
//! so artifact names do not matter. The matrix report (`matrix.json`, `matrix.md`, `matrix.html`)
//! is written next to `cells/`, deterministically: no clock, cells in matrix order.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::e2e::report::{Outcome, Report};
use crate::evidence::{NOT_RUN, NotRunRecord, REPORT};
use crate::stack::{Arch, Backend, Cell, Stack, Subset};

/// The compatibility matrix: plan, run, report.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// List the cells of a subset, and whether this machine can run each.
    Plan(PlanArgs),
    /// Run the cells this machine can run, mark the others "not run here", write the report.
    Run(RunArgs),
    /// Write the matrix report from e2e reports gathered elsewhere (e.g. a CI run's artifacts).
    Report(ReportArgs),
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Which cells.
    #[arg(long, value_enum, default_value = "pr")]
    pub subset: Subset,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Which cells.
    #[arg(long, value_enum, default_value = "pr")]
    pub subset: Subset,
    /// Only these cells of the subset (by id, as `matrix plan` lists them), repeatable: a CI leg runs one.
    #[arg(long = "cell", value_name = "ID")]
    pub cells: Vec<String>,
    /// The bundle folder to run (built elsewhere, e.g. a CI artifact); only with one --cell.
    #[arg(long, value_name = "DIR", requires = "cells")]
    pub bundle: Option<Utf8PathBuf>,
    /// Folder for the cells' reports and the matrix report (default: target/matrix/<subset>).
    #[arg(long)]
    pub out: Option<Utf8PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Which cells the report covers (a cell with no report is shown as such).
    #[arg(long, value_enum, default_value = "pr")]
    pub subset: Subset,
    /// Folder holding e2e `report.json` files (and `not-run.json`), at any depth.
    #[arg(long)]
    pub reports: Utf8PathBuf,
    /// Where the matrix report goes (default: the reports folder).
    #[arg(long)]
    pub out: Option<Utf8PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let stack = crate::stack::load(&crate::paths::stack_file())?;
    match args.what {
        What::Plan(a) => plan_cmd(&stack, &a),
        What::Run(a) => run_cmd(&stack, &a),
        What::Report(a) => {
            let out = a.out.clone().unwrap_or_else(|| a.reports.clone());
            let m = build(&stack, a.subset, &a.reports)?;
            write(&out, &m)?;
            crate::e2e::report::append_step_summary(&out.join("matrix.md"));
            crate::note!("matrix: {}", m.line());
            Ok(())
        }
    }
}

/// Why this machine cannot run `cell`, or `None` when it can.
pub fn not_runnable_here(stack: &Stack, cell: &Cell) -> Option<String> {
    if let Some(why) = crate::e2e::tier_missing(cell.backend) {
        return Some(why.to_string());
    }
    if let Some(why) = crate::e2e::arch_missing(cell.backend, cell.arch) {
        return Some(why);
    }
    if Arch::host() != Some(cell.arch) && !(cell.arch == Arch::Arm64 && Arch::host() == Some(Arch::Amd64)) {
        return Some(format!("{} cannot run on this {} machine", cell.arch, std::env::consts::ARCH));
    }
    let profile = stack.profile(&cell.profile).ok()?;
    let lock = profile.lock_file();
    let lock = crate::paths::shown(&lock);
    if cell.profile != "local" && !profile.lock_file().exists() {
        return Some(format!(
            "profile {} is not pinned: {lock} is missing, and `cargo xtask lock --profile {}` needs the registries",
            cell.profile, cell.profile
        ));
    }
    None
}

fn plan_cmd(stack: &Stack, args: &PlanArgs) -> Result<()> {
    let cells = stack.subset(args.subset);
    if args.json {
        let rows: Vec<serde_json::Value> = cells
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id(),
                    "cell": c,
                    "experimental": stack.is_experimental(c),
                    "not_run_here": not_runnable_here(stack, c),
                })
            })
            .collect();
        crate::outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    crate::outln!("{} cells in the {} subset", cells.len(), args.subset.as_str())?;
    for c in &cells {
        let here =
            not_runnable_here(stack, c).map_or_else(|| "runs here".to_string(), |r| format!("not run here: {r}"));
        let exp = if stack.is_experimental(c) { " (experimental)" } else { "" };
        crate::outln!("  {:<56} {here}{exp}", c.id())?;
    }
    Ok(())
}

fn run_cmd(stack: &Stack, args: &RunArgs) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| crate::paths::matrix_out_dir(args.subset.as_str()));
    let cells_dir = out.join("cells");
    // A fresh folder: a report left by an earlier run must not stand for this one.
    if cells_dir.exists() {
        std::fs::remove_dir_all(&cells_dir).with_context(|| format!("clearing {cells_dir}"))?;
    }
    let subset = stack.subset(args.subset);
    for id in &args.cells {
        if !subset.iter().any(|c| &c.id() == id) {
            let ids: Vec<String> = subset.iter().map(Cell::id).collect();
            bail!("--cell {id}: no such cell in the {} subset; it has {}", args.subset.as_str(), ids.join(", "));
        }
    }
    if args.bundle.is_some() && args.cells.len() != 1 {
        bail!("--bundle is one cell's bundle: pass exactly one --cell with it");
    }
    let scenarios = crate::e2e::scenario::load_dir(&crate::paths::scenarios_dir(), &[])?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let cancel = crate::e2e::cancel::Cancel::install(&rt)?;
    for cell in subset.into_iter().filter(|c| args.cells.is_empty() || args.cells.contains(&c.id())) {
        let dir = cells_dir.join(cell.id());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {dir}"))?;
        if let Some(reason) = not_runnable_here(stack, &cell) {
            crate::note!("matrix: {cell}: not run here: {reason}");
            crate::evidence::write_record(&dir.join(NOT_RUN), &NotRunRecord::new(cell.clone(), reason))?;
            continue;
        }
        crate::note!("matrix: {cell}: running");
        let cfg = crate::e2e::RunConfig { bundle: args.bundle.clone(), ..crate::e2e::RunConfig::of(cell.clone()) };
        let run_id = crate::e2e::run_id(cell.arch);
        cancel.check()?;
        match crate::e2e::run_once(&rt, &cancel, stack, &cfg, &run_id, &scenarios) {
            Ok(_) => {
                let run_dir = crate::paths::e2e_run_dir(&run_id);
                for f in crate::e2e::report::FILES {
                    let from = run_dir.join(f);
                    std::fs::copy(&from, dir.join(f)).with_context(|| format!("copying {from} into {dir}"))?;
                }
            }
            // Could not even start (e.g. no Docker): the cell did not run, and says why.
            Err(e) => {
                let reason = format!("the run could not start: {e:#}");
                crate::note!("matrix: {cell}: {reason}");
                crate::evidence::write_record(&dir.join(NOT_RUN), &NotRunRecord::new(cell.clone(), reason))?;
            }
        }
    }
    let mut m = build(stack, args.subset, &out)?;
    if !args.cells.is_empty() {
        m.cells.retain(|c| args.cells.contains(&c.id));
    }
    let written = write(&out, &m)?;
    crate::note!("matrix: {}; report: {}", m.line(), written.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "));
    if m.cells.iter().any(|c| c.mark == Mark::Failed && !c.experimental) {
        bail!("a cell failed: see {}", out.join("matrix.md"));
    }
    Ok(())
}

/// The matrix report's format version.
pub const SCHEMA: u32 = 1;

/// KubeEdge's compatibility-table marks, plus one for cells without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mark {
    /// ✓ every scenario passed.
    Passed,
    /// \+ passed, but some scenarios did not run (their components are not in that bundle) or
    /// the report has warnings.
    Partly,
    /// − a scenario failed, or the run failed to come up.
    Failed,
    /// ○ not run (here, or no report was found).
    NotRun,
}

impl Mark {
    pub fn symbol(self) -> &'static str {
        match self {
            Mark::Passed => "✓",
            Mark::Partly => "+",
            Mark::Failed => "−",
            Mark::NotRun => "○",
        }
    }
}

/// One cell's result in the matrix report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub id: String,
    pub cell: Cell,
    pub experimental: bool,
    pub mark: Mark,
    /// Why it did not pass fully: failing scenarios, not-run scenarios, warnings, the not-run reason.
    pub detail: Vec<String>,
    /// Its e2e report, relative to the report folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatrixReport {
    pub schema: u32,
    pub subset: Subset,
    pub cells: Vec<CellResult>,
    /// Reports found that match no cell of the subset (another subset's, or a renamed axis).
    pub ignored: Vec<String>,
}

impl MatrixReport {
    /// `4 cells: 2 ✓, 0 +, 0 −, 2 ○`.
    pub fn line(&self) -> String {
        let n = |m: Mark| self.cells.iter().filter(|c| c.mark == m).count();
        format!(
            "{} cells: {} ✓, {} +, {} −, {} ○",
            self.cells.len(),
            n(Mark::Passed),
            n(Mark::Partly),
            n(Mark::Failed),
            n(Mark::NotRun)
        )
    }
}

/// What the report folder says of each cell: every e2e report and not-run record of it, found
/// by walking `dir` (paths relative to `dir`, in path order). Nothing is dropped: two reports of
/// one cell are both kept, for the gate to judge both.
#[derive(Debug, Default)]
pub struct Found {
    pub reports: BTreeMap<Cell, Vec<(Utf8PathBuf, Report)>>,
    pub not_run: BTreeMap<Cell, Vec<(Utf8PathBuf, NotRunRecord)>>,
    /// Files that could not be read or were refused (named, with why).
    pub unreadable: Vec<String>,
}

/// Every file under `dir` (at any depth) whose name `wanted` accepts, sorted.
pub fn files_under(dir: &Utf8Path, wanted: impl Fn(&str) -> bool) -> Result<Vec<Utf8PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {d}"))? {
            let e = e?;
            let Ok(path) = Utf8PathBuf::from_path_buf(e.path()) else { continue };
            if e.file_type()?.is_dir() {
                todo.push(path);
            } else if path.file_name().is_some_and(&wanted) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every `report.json` and `not-run.json` under `dir`, each read as evidence
/// ([`crate::evidence::read`]: schema checked, refused if it claims nothing); all of them kept.
pub fn find(dir: &Utf8Path) -> Result<Found> {
    if !dir.is_dir() {
        bail!("{dir} is not a folder of e2e reports (run `cargo xtask matrix run`, or download a CI run's artifacts)");
    }
    let mut found = Found::default();
    let files = files_under(dir, |n| n == REPORT || n == NOT_RUN)?;
    for path in files {
        let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
        // Errors name the file as found under `dir`.
        let unreadable = |e: anyhow::Error| format!("{e:#}").replace(path.as_str(), rel.as_str());
        if path.file_name() == Some(REPORT) {
            match crate::evidence::read::<Report>(&path).map(|r| (r.cell(), r)) {
                Ok((cell, r)) => found.reports.entry(cell).or_default().push((rel, r)),
                Err(e) => found.unreadable.push(unreadable(e)),
            }
        } else {
            match crate::evidence::read::<NotRunRecord>(&path) {
                Ok(n) => found.not_run.entry(n.cell.clone()).or_default().push((rel, n)),
                Err(e) => found.unreadable.push(unreadable(e)),
            }
        }
    }
    Ok(found)
}

/// The matrix report of `subset` from the reports under `dir`. Pure but for reading `dir`.
pub fn build(stack: &Stack, subset: Subset, dir: &Utf8Path) -> Result<MatrixReport> {
    let found = find(dir)?;
    if !found.unreadable.is_empty() {
        bail!("unreadable reports under {dir}:\n  {}", found.unreadable.join("\n  "));
    }
    let cells = stack.subset(subset);
    let mut results = Vec::new();
    for cell in &cells {
        let experimental = stack.is_experimental(cell);
        let none = Vec::new();
        let reports = found.reports.get(cell).unwrap_or(&none);
        let (mark, detail, report) = match (reports.as_slice(), found.not_run.get(cell)) {
            ([], Some(records)) => {
                (Mark::NotRun, records.iter().map(|(_, n)| format!("not run here: {}", n.reason)).collect(), None)
            }
            ([], None) => {
                (Mark::NotRun, vec!["no report: the cell did not run, or its report was not collected".into()], None)
            }
            ([(path, r)], _) => {
                let (mark, detail) = judge(r);
                (mark, detail, Some(path.to_string()))
            }
            (many, _) => {
                // The table shows one report: the worst one (the latest of those), so a failing
                // duplicate is never hidden behind a pass; the detail names every report.
                let judged: Vec<(&Utf8PathBuf, &Report, Mark, Vec<String>)> = many
                    .iter()
                    .map(|(p, r)| {
                        let (m, d) = judge(r);
                        (p, r, m, d)
                    })
                    .collect();
                let rank = |m: Mark| match m {
                    Mark::Failed => 3,
                    Mark::NotRun => 2,
                    Mark::Partly => 1,
                    Mark::Passed => 0,
                };
                let worst = judged
                    .iter()
                    .max_by(|a, b| rank(a.2).cmp(&rank(b.2)).then_with(|| a.1.started.cmp(&b.1.started)))
                    .expect("two or more reports");
                let mut detail = vec![format!(
                    "{} reports: {}",
                    many.len(),
                    judged.iter().map(|(p, _, m, _)| format!("{p} {}", m.symbol())).collect::<Vec<_>>().join(", ")
                )];
                for (p, _, _, d) in &judged {
                    detail.extend(d.iter().map(|d| format!("{p}: {d}")));
                }
                (worst.2, detail, Some(worst.0.to_string()))
            }
        };
        results.push(CellResult { id: cell.id(), cell: cell.clone(), experimental, mark, detail, report });
    }
    let ignored = found
        .reports
        .iter()
        .filter(|(c, _)| !cells.contains(c))
        .flat_map(|(c, rs)| {
            rs.iter().map(move |(p, _)| format!("{p} ({c}): not a cell of the {} subset", subset.as_str()))
        })
        .collect();
    Ok(MatrixReport { schema: SCHEMA, subset, cells: results, ignored })
}

/// A report's mark and what explains it.
fn judge(r: &Report) -> (Mark, Vec<String>) {
    let mut detail = Vec::new();
    for s in &r.scenarios {
        match &s.status {
            crate::e2e::report::Status::Failed => {
                let step = s.steps.iter().find(|x| x.status == crate::e2e::report::Status::Failed);
                detail.push(format!(
                    "failed: {}{}",
                    s.name,
                    step.map(|x| format!(" / {}: {}", x.name, x.message.clone().unwrap_or_default()))
                        .unwrap_or_default()
                ));
            }
            crate::e2e::report::Status::NotRun { reason } => detail.push(format!("not run: {} ({reason})", s.name)),
            crate::e2e::report::Status::Interrupted { signal } => {
                detail.push(format!("interrupted by {signal}: {}", s.name))
            }
            crate::e2e::report::Status::Passed => {}
        }
    }
    let warnings = r.warnings();
    detail.extend(warnings.iter().map(|w| format!("warning: {w}")));
    let mark = if r.outcome() != Outcome::Passed {
        Mark::Failed
    } else if detail.is_empty() {
        Mark::Passed
    } else {
        Mark::Partly
    };
    (mark, detail)
}

const LEGEND: [(Mark, &str); 4] = [
    (Mark::Passed, "every scenario passed"),
    (
        Mark::Partly,
        "passed, but some scenarios did not run (their components are not in that bundle) or there were warnings",
    ),
    (Mark::Failed, "a scenario failed, or the run could not come up"),
    (Mark::NotRun, "not run (on the machine that made this report, or no report was collected)"),
];

/// `matrix.json`, `matrix.md` and `matrix.html` into `out`; their paths.
pub fn write(out: &Utf8Path, m: &MatrixReport) -> Result<Vec<Utf8PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {out}"))?;
    let mut written = Vec::new();
    for (name, text) in [
        ("matrix.json", format!("{}\n", serde_json::to_string_pretty(m)?)),
        ("matrix.md", markdown(m)),
        ("matrix.html", html(m)),
    ] {
        let path = out.join(name);
        crate::atomic::write(&path, text.as_bytes(), false)?;
        written.push(path);
    }
    Ok(written)
}

/// One table of the report: a title, column headers, rows of (row header, cells).
struct Table {
    title: String,
    columns: Vec<String>,
    rows: Vec<(String, Vec<String>)>,
}

/// The tables: one for the compose tier and one for the kubernetes tier (profile × arch), and per
/// arch one for k3s (KubeEdge × k3s, as KubeEdge's own table), in matrix order.
fn tables(m: &MatrixReport) -> Vec<Table> {
    use std::collections::BTreeSet;
    // The mark of the cell `is` picks, or an empty cell.
    let at = |is: &dyn Fn(&Cell) -> bool| {
        m.cells
            .iter()
            .find(|c| is(&c.cell))
            .map_or(String::new(), |c| format!("{}{}", c.mark.symbol(), if c.experimental { " ᵉ" } else { "" }))
    };
    let mut out = Vec::new();
    // The tiers without version axes: profile × arch.
    for (backend, title) in
        [(Backend::Compose, "compose tier"), (Backend::Kubernetes, "kubernetes tier (simulated KubeEdge edges)")]
    {
        let cells: Vec<&Cell> = m.cells.iter().map(|c| &c.cell).filter(|c| c.backend == backend).collect();
        if cells.is_empty() {
            continue;
        }
        let arches: BTreeSet<Arch> = cells.iter().map(|c| c.arch).collect();
        let profiles: BTreeSet<&str> = cells.iter().map(|c| c.profile.as_str()).collect();
        let rows = profiles
            .iter()
            .map(|p| {
                let cells =
                    arches.iter().map(|a| at(&|c| c.backend == backend && c.profile == *p && c.arch == *a)).collect();
                (format!("profile {p}"), cells)
            })
            .collect();
        out.push(Table { title: title.into(), columns: arches.iter().map(|a| a.to_string()).collect(), rows });
    }
    let k3s: Vec<&Cell> = m.cells.iter().map(|c| &c.cell).filter(|c| c.backend == Backend::K3s).collect();
    let groups: BTreeSet<(&str, Arch)> = k3s.iter().map(|c| (c.profile.as_str(), c.arch)).collect();
    for (profile, arch) in groups {
        let group: Vec<&&Cell> = k3s.iter().filter(|c| c.profile == profile && c.arch == arch).collect();
        // Newest first, as KubeEdge's own table.
        let k3s_versions: BTreeSet<&crate::stack::Version> = group.iter().filter_map(|c| c.k3s.as_ref()).collect();
        let kubeedge: BTreeSet<&crate::stack::Version> = group.iter().filter_map(|c| c.kubeedge.as_ref()).collect();
        let rows = kubeedge
            .iter()
            .rev()
            .map(|e| {
                let cells = k3s_versions
                    .iter()
                    .rev()
                    .map(|k| {
                        at(&|c| {
                            c.backend == Backend::K3s
                                && c.profile == profile
                                && c.arch == arch
                                && c.k3s.as_ref() == Some(*k)
                                && c.kubeedge.as_ref() == Some(*e)
                        })
                    })
                    .collect();
                (format!("KubeEdge {e}"), cells)
            })
            .collect();
        out.push(Table {
            title: format!("k3s tier, profile {profile}, {arch}"),
            columns: k3s_versions.iter().rev().map(|k| format!("k3s {k}")).collect(),
            rows,
        });
    }
    out
}

fn markdown(m: &MatrixReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Compatibility matrix ({} subset)\n", m.subset.as_str());
    let _ = writeln!(s, "{}\n", m.line());
    for Table { title, columns, rows } in tables(m) {
        let _ = writeln!(s, "## {title}\n");
        let _ = writeln!(s, "| | {} |", columns.join(" | "));
        let _ = writeln!(s, "|---|{}", "---|".repeat(columns.len()));
        for (name, cells) in rows {
            let _ = writeln!(s, "| {name} | {} |", cells.join(" | "));
        }
        s.push('\n');
    }
    s.push_str("Legend:\n\n");
    for (mark, text) in LEGEND {
        let _ = writeln!(s, "- `{}` {text}", mark.symbol());
    }
    s.push_str("- `ᵉ` experimental: reported, but it fails neither the workflow nor the release gate\n\n");
    s.push_str("## Cells\n\n| | cell | id | details | report |\n|---|---|---|---|---|\n");
    for c in &m.cells {
        let detail = if c.detail.is_empty() { "—".to_string() } else { c.detail.join("<br>").replace('|', "\\|") };
        let _ = writeln!(
            s,
            "| {} | {}{} | `{}` | {detail} | {} |",
            c.mark.symbol(),
            c.cell,
            if c.experimental { " (experimental)" } else { "" },
            c.id,
            c.report.as_deref().map_or("—".to_string(), |r| format!("`{r}`"))
        );
    }
    if !m.ignored.is_empty() {
        s.push_str("\nReports that match no cell of this subset:\n\n");
        for i in &m.ignored {
            let _ = writeln!(s, "- {i}");
        }
    }
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html(m: &MatrixReport) -> String {
    let mut s = String::new();
    s.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Compatibility matrix</title>\n<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:center}td.d{text-align:left}</style></head><body>\n");
    let _ = writeln!(s, "<h1>Compatibility matrix ({} subset)</h1>\n<p>{}</p>", m.subset.as_str(), esc(&m.line()));
    for Table { title, columns, rows } in tables(m) {
        let _ = writeln!(s, "<h2>{}</h2>\n<table><tr><th></th>", esc(&title));
        for c in &columns {
            let _ = write!(s, "<th>{}</th>", esc(c));
        }
        s.push_str("</tr>\n");
        for (name, cells) in rows {
            let _ = write!(s, "<tr><th>{}</th>", esc(&name));
            for c in cells {
                let _ = write!(s, "<td>{}</td>", esc(&c));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
    }
    s.push_str("<ul>\n");
    for (mark, text) in LEGEND {
        let _ = writeln!(s, "<li><b>{}</b> {}</li>", mark.symbol(), esc(text));
    }
    s.push_str(
        "<li><b>ᵉ</b> experimental: reported, but it fails neither the workflow nor the release gate</li>\n</ul>\n",
    );
    s.push_str("<h2>Cells</h2>\n<table><tr><th></th><th>cell</th><th>details</th><th>report</th></tr>\n");
    for c in &m.cells {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"d\">{}{}</td><td class=\"d\">{}</td><td class=\"d\">{}</td></tr>",
            c.mark.symbol(),
            esc(&c.cell.to_string()),
            if c.experimental { " (experimental)" } else { "" },
            if c.detail.is_empty() {
                "—".to_string()
            } else {
                c.detail.iter().map(|d| esc(d)).collect::<Vec<_>>().join("<br>")
            },
            c.report.as_deref().map_or("—".to_string(), |r| format!("<a href=\"{}\">{}</a>", esc(r), esc(r)))
        );
    }
    s.push_str("</table>\n</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> Stack {
        crate::stack::load(&crate::paths::stack_file()).expect("stack.toml loads")
    }

    fn ids(cells: &[Cell]) -> Vec<String> {
        cells.iter().map(Cell::id).collect()
    }

    #[test]
    fn the_project_matrix_expands_to_its_cells() {
        let s = stack();
        assert_eq!(
            ids(&s.subset(Subset::Pr)),
            [
                "compose-local-amd64",
                "compose-local-arm64",
                "kubernetes-local-amd64",
                "k3s-upstream-amd64-k3s-v1.34.2-k3s1-kubeedge-1.22.0"
            ]
        );
        let full = s.subset(Subset::Full);
        // compose × 2 profiles × 2 arches + kubernetes × local (upstream excluded) × 2 arches + k3s
        // × upstream (local excluded) × 2 arches × 2 × 2.
        assert_eq!(full.len(), 4 + 2 + 8);
        assert!(s.is_experimental(full.iter().find(|c| c.id() == "kubernetes-local-arm64").unwrap()));
        assert!(full.iter().all(|c| !(c.backend == Backend::K3s && c.profile == "local")), "excluded");
        assert!(full.iter().filter(|c| c.backend == Backend::K3s).all(|c| s.is_experimental(c)));
        assert!(!s.is_experimental(&full[0]), "{}", full[0]);
    }

    #[test]
    fn include_adds_one_cell_and_exclude_removes_by_pattern() {
        let mut s = stack();
        let baseline = Cell {
            backend: Backend::K3s,
            profile: "upstream".into(),
            arch: Arch::Amd64,
            k3s: Some("v1.32.0+k3s1".to_string().try_into().unwrap()),
            kubeedge: Some("1.22.0".to_string().try_into().unwrap()),
        };
        s.matrix.include = vec![baseline.clone(), s.cells()[0].clone()];
        let cells = s.cells();
        assert!(cells.contains(&baseline), "an included pair off the axes");
        assert_eq!(cells.len(), 14 + 1, "an included cell already in the product is not doubled");
        s.matrix.exclude.push(crate::stack::CellPattern { arch: Some(Arch::Arm64), ..Default::default() });
        assert!(s.cells().iter().all(|c| c.arch == Arch::Amd64));
    }

    #[test]
    fn tables_have_each_arch_and_version_once_newest_first() {
        let s = stack();
        let cells = s
            .subset(Subset::Full)
            .into_iter()
            .map(|cell| CellResult {
                id: cell.id(),
                experimental: s.is_experimental(&cell),
                mark: Mark::NotRun,
                detail: Vec::new(),
                report: None,
                cell,
            })
            .collect();
        let t = tables(&MatrixReport { schema: SCHEMA, subset: Subset::Full, cells, ignored: Vec::new() });
        assert_eq!(t[0].title, "compose tier");
        assert_eq!(t[0].columns, ["amd64", "arm64"], "two profiles must not repeat the arches");
        assert_eq!(t[0].rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["profile local", "profile upstream"]);
        assert_eq!(t[1].title, "kubernetes tier (simulated KubeEdge edges)");
        assert_eq!(t[1].rows, [("profile local".to_string(), vec!["○".to_string(), "○ ᵉ".to_string()])]);
        assert_eq!(t[2].title, "k3s tier, profile upstream, amd64");
        assert_eq!(t[2].columns, ["k3s v1.34.2+k3s1", "k3s v1.33.6+k3s1"]);
        assert_eq!(t[2].rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["KubeEdge 1.22.0", "KubeEdge 1.21.1"]);
        assert!(t[2].rows.iter().all(|r| r.1.iter().all(|c| c == "○ ᵉ")), "{:?}", t[2].rows);
        assert_eq!(t.len(), 4, "compose, kubernetes, and k3s for each arch");
    }

    #[test]
    fn marks_follow_the_report() {
        let r = |status: &str| -> Report {
            let text = std::fs::read_to_string(
                crate::paths::fixtures_dir().join("gate/good/cells/compose-local-amd64/report.json"),
            )
            .unwrap();
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            if status == "all" {
                v["scenarios"].as_array_mut().unwrap().retain(|s| s["status"] != "not-run");
            }
            if status == "failed" {
                v["scenarios"][0]["status"] = "failed".into();
            }
            serde_json::from_value(v).unwrap()
        };
        assert_eq!(judge(&r("all")).0, Mark::Passed);
        let (mark, detail) = judge(&r("partly"));
        assert_eq!(mark, Mark::Partly);
        assert!(detail.iter().any(|d| d.starts_with("not run: grafana")), "{detail:?}");
        assert_eq!(judge(&r("failed")).0, Mark::Failed);
    }
}
