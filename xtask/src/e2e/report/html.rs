//! `report.html`: one self-contained page, readable offline.
//!
//! No script, no external stylesheet, font or image: an inline `<style>` and
//! inline SVG. It has the tables of `summary.md`, every scenario's steps, and
//! plots: per edge container memory and CPU over time with the budget as a
//! dashed line, and a bar chart of alert latencies (measured against bound).
//! All user text goes through [`esc`]; long fields are cut to [`FIELD_LIMIT`].
//! Coordinates are printed with one decimal, so the page is deterministic.

use std::fmt::Write as _;

use super::{
    Latency, LatencyVerdict, Mark, Outcome, Report, ResourceSeries, SCHEMA, ScenarioResult, Status, delta_text,
    latency_label, mib, millicores, seconds, seconds_opt, truncate,
};

/// Longest text of one field; the rest is in report.json.
const FIELD_LIMIT: usize = 64 * 1024;

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5rem auto;max-width:1200px;padding:0 1rem;color:#1b1f24}
h1{margin:.2rem 0}h2{margin-top:2rem;border-bottom:1px solid #d0d7de}h3{margin-bottom:.3rem}
header{padding:.6rem 1rem;border-radius:6px}header.passed{background:#dafbe1}header.failed{background:#ffebe9}header.interrupted{background:#fff8c5}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;padding:.6rem;border-radius:6px;overflow:auto;white-space:pre-wrap}
.pass{color:#1a7f37}.fail{color:#cf222e}.warn{color:#9a6700}.skip,.neutral{color:#57606a}
.warnings{background:#fff8c5;padding:.4rem 1rem;border-radius:6px}
figure{display:inline-block;margin:.5rem 1rem .5rem 0}figcaption{font-weight:600}
svg text{font:11px sans-serif;fill:#1b1f24}svg .axis{stroke:#8c959f}svg .grid{stroke:#eaeef2}
svg .series{fill:none;stroke:#0969da;stroke-width:1.5}svg .dot{fill:#0969da}
svg .budget{stroke:#cf222e;stroke-width:1.2;stroke-dasharray:6 4}svg .budget-off{stroke:#8c959f;stroke-width:1.2;stroke-dasharray:6 4}
svg .bound{fill:#d0d7de}svg .measured{fill:#0969da}svg .over{fill:#bf8700}svg .explained{fill:#8250df}
footer{margin-top:2rem;color:#57606a;font-size:12px}
";

pub(super) fn render(report: &Report) -> String {
    let counts = report.counts();
    let (class, icon, verdict) = match report.outcome() {
        Outcome::Passed => ("passed", "✅", "passed"),
        Outcome::Failed => ("failed", "❌", "failed"),
        Outcome::Interrupted => ("interrupted", "⏹", "interrupted"),
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>e2e {verdict}: {}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        esc(&report.run_id)
    );
    let _ = write!(
        h,
        "<header class=\"{class}\">\n<h1>{icon} e2e {verdict}</h1>\n<p><strong>{}</strong> · {} · {} latency warning{}</p>\n</header>\n",
        counts.scenario_line(),
        counts.budget_line(),
        counts.latency_warnings,
        if counts.latency_warnings == 1 { "" } else { "s" }
    );
    h.push_str("<table class=\"meta\">\n");
    for (key, value) in [
        ("run", report.run_id.clone()),
        ("started", report.started.clone()),
        ("duration", seconds(report.duration_s)),
        ("phases", report.phases_line().unwrap_or_else(|| "not recorded".into())),
        ("backend", report.backend_label()),
        ("profile", report.profile.clone()),
        ("arch", report.arch_label()),
        ("tool", report.tool.clone()),
        ("bundle", report.bundle.clone()),
    ] {
        let _ = writeln!(h, "<tr><th>{key}</th><td>{}</td></tr>", text(&value));
    }
    h.push_str("</table>\n");

    let warnings = report.warnings();
    if !warnings.is_empty() {
        h.push_str("<section class=\"warnings\">\n<h2>⚠️ Warnings</h2>\n<ul>\n");
        for warning in &warnings {
            let _ = writeln!(h, "<li>{}</li>", text(warning));
        }
        h.push_str("</ul>\n</section>\n");
    }

    scenarios(&mut h, report);
    failing_steps(&mut h, report);
    resources(&mut h, report);
    links(&mut h, report);
    latencies(&mut h, report);

    if !report.notes.is_empty() {
        h.push_str("<h2>Notes</h2>\n<ul>\n");
        for note in &report.notes {
            let _ = writeln!(h, "<li>{}</li>", text(note));
        }
        h.push_str("</ul>\n");
    }
    let _ = write!(
        h,
        "<footer>Written by <code>cargo xtask e2e</code>; the data is in report.json (schema {SCHEMA}).</footer>\n</body>\n</html>\n"
    );
    h
}

fn scenarios(h: &mut String, report: &Report) {
    h.push_str("<h2>Scenarios</h2>\n");
    if report.scenarios.is_empty() {
        h.push_str("<p>No scenario in this run.</p>\n");
        return;
    }
    h.push_str(
        "<table>\n<tr><th></th><th>scenario</th><th>file</th><th>steps</th><th>duration</th><th>logs</th></tr>\n",
    );
    for scenario in &report.scenarios {
        let passed = scenario.steps.iter().filter(|s| s.status.is_passed()).count();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{passed}/{} passed</td><td class=\"num\">{}</td><td>{}</td></tr>",
            status_cell(&scenario.verdict()),
            text(&scenario.name),
            text(&scenario.file),
            scenario.steps.len(),
            seconds(scenario.duration_s),
            logs(scenario),
        );
    }
    h.push_str("</table>\n");
    for scenario in &report.scenarios {
        if scenario.steps.is_empty() {
            continue;
        }
        let _ = writeln!(
            h,
            "<details><summary>Steps of {}</summary>\n<table>\n<tr><th></th><th>step</th><th>duration</th><th>message</th></tr>",
            text(&scenario.name)
        );
        for step in &scenario.steps {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                status_cell(&step.status),
                text(&step.name),
                seconds(step.duration_s),
                step.message.as_deref().map_or_else(String::new, text),
            );
        }
        h.push_str("</table>\n</details>\n");
    }
}

fn failing_steps(h: &mut String, report: &Report) {
    let failed: Vec<_> = report.scenarios.iter().filter(|s| s.verdict().is_failed()).collect();
    if failed.is_empty() {
        return;
    }
    h.push_str("<h2>Failing steps</h2>\n");
    for scenario in failed {
        let steps: Vec<_> = scenario.steps.iter().filter(|s| s.status.is_failed()).collect();
        if steps.is_empty() {
            let _ = writeln!(
                h,
                "<h3 class=\"fail\">❌ {}</h3>\n<p>The scenario failed without a failing step.</p>",
                text(&scenario.name)
            );
        }
        for step in steps {
            let _ = writeln!(
                h,
                "<h3 class=\"fail\">❌ {} › {}</h3>\n<pre>{}</pre>",
                text(&scenario.name),
                text(&step.name),
                esc(&step.failure_text_cut(FIELD_LIMIT)),
            );
        }
        if !scenario.logs.is_empty() {
            let _ = writeln!(h, "<p>Logs: {}</p>", logs(scenario));
        }
    }
}

fn resources(h: &mut String, report: &Report) {
    if report.resources.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Edge resources</h2>\n<p>Memory is checked on its maximum, CPU on its 95th percentile \
         (nearest rank); figures measured under emulation (qemu's own memory and CPU included) are shown but not enforced.</p>\n<table>\n\
         <tr><th>component</th><th>node</th><th>container</th><th>samples</th>\
         <th>memory p50 / p95 / max</th><th>memory budget</th><th>CPU p50 / p95 / max</th>\
         <th>CPU budget</th><th>budget</th></tr>\n",
    );
    for series in &report.resources {
        let summary = series.summary();
        let verdict = series.verdict(&summary);
        let memory = summary
            .memory_bytes
            .map_or_else(|| "—".to_string(), |m| format!("{} / {} / {}", mib(m.p50), mib(m.p95), mib(m.max)));
        let cpu = summary.cpu_millicores.map_or_else(
            || "—".to_string(),
            |c| format!("{} / {} / {}", millicores(c.p50), millicores(c.p95), millicores(c.max)),
        );
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{memory}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{cpu}</td><td class=\"num\">{}</td><td class=\"{}\">{} {}</td></tr>",
            text(&series.label()),
            text(&series.node),
            text(&series.container),
            summary.samples,
            series.budget_memory_bytes.map_or_else(|| "—".to_string(), mib),
            series.budget_cpu_millicores.map_or_else(|| "—".to_string(), |c| millicores(c as f64)),
            mark_class(&verdict.mark),
            mark_icon(&verdict.mark),
            text(&verdict.text),
        );
    }
    h.push_str("</table>\n");
    for series in &report.resources {
        series_plots(h, series);
    }
}

fn series_plots(h: &mut String, series: &ResourceSeries) {
    let _ = writeln!(h, "<h3>{} on {} ({})</h3>", text(&series.label()), text(&series.node), text(&series.container));
    if series.samples.is_empty() {
        h.push_str("<p class=\"warn\">No samples: nothing to plot, budget not checked.</p>\n");
        return;
    }
    const MIB: f64 = 1024.0 * 1024.0;
    let memory: Vec<(f64, f64)> = series.samples.iter().map(|s| (s.t_s, s.memory_bytes as f64 / MIB)).collect();
    let cpu: Vec<(f64, f64)> = series.samples.iter().map(|s| (s.t_s, s.cpu_millicores)).collect();
    let plots = [
        Plot {
            title: "memory",
            unit: "MiB",
            points: memory,
            budget: series.budget_memory_bytes.map(|b| b as f64 / MIB),
            enforced: true,
        },
        Plot {
            title: if series.emulated { "CPU (emulated, not enforced)" } else { "CPU" },
            unit: "m",
            points: cpu,
            budget: series.budget_cpu_millicores.map(|b| b as f64),
            enforced: !series.emulated,
        },
    ];
    for plot in &plots {
        let _ = writeln!(h, "<figure>\n<figcaption>{}</figcaption>\n{}</figure>", text(plot.title), line_plot(plot));
    }
}

fn links(h: &mut String, report: &Report) {
    if report.links.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h2>Edge links</h2>\n<p>Bytes over each edge's interface on the cloud network, per minute: at steady state \
         (against the budget, both directions) and replaying a buffer in the {:.0} s after a cut or restart.</p>\n<table>\n\
         <tr><th>node</th><th>steady s</th><th>sent</th><th>received</th><th>replay sent</th><th>replay received</th>\
         <th>budget</th><th>verdict</th></tr>",
        super::REPLAY_WINDOW_S
    );
    for link in &report.links {
        let summary = link.summary();
        let verdict = link.verdict(&summary);
        let [sent, received, replay_sent, replay_received, budget] = link.cells(&summary);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"num\">{:.0}</td><td class=\"num\">{sent}</td><td class=\"num\">{received}</td>\
             <td class=\"num\">{replay_sent}</td><td class=\"num\">{replay_received}</td><td class=\"num\">{budget}</td>\
             <td class=\"{}\">{} {}</td></tr>",
            text(&link.node),
            summary.steady_s,
            mark_class(&verdict.mark),
            mark_icon(&verdict.mark),
            text(&verdict.text),
        );
    }
    h.push_str("</table>\n");
    for link in &report.links {
        let _ = writeln!(h, "<h3>link of {}</h3>", text(&link.node));
        let points: Vec<(f64, f64)> = link.rates().into_iter().map(|(t, b)| (t, b / 1024.0)).collect();
        if points.is_empty() {
            h.push_str("<p class=\"warn\">No samples: nothing to plot, budget not checked.</p>\n");
            continue;
        }
        let plot = Plot {
            title: "traffic, both directions",
            unit: "KiB/min",
            points,
            budget: link.budget_bytes_per_min.map(|b| b as f64 / 1024.0),
            enforced: true,
        };
        let _ = writeln!(h, "<figure>\n<figcaption>{}</figcaption>\n{}</figure>", text(plot.title), line_plot(&plot));
    }
}

fn latencies(h: &mut String, report: &Report) {
    if report.latencies.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h2>Alert latency</h2>\n<p>From the fault to the alert firing; more than {:.0}% over the \
         bound without an explanation is a warning.</p>\n<table>\n<tr><th>scenario</th><th>alert</th>\
         <th>bound</th><th>measured</th><th>delta</th><th></th><th>explanation</th></tr>",
        super::LATENCY_TOLERANCE * 100.0
    );
    for latency in &report.latencies {
        let (class, icon) = latency_mark(latency);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"{class}\">{icon} {}</td><td>{}</td></tr>",
            text(&latency.scenario),
            text(&latency.alert),
            seconds(latency.bound_s),
            seconds_opt(latency.measured_s),
            delta_text(latency.delta_percent()),
            latency_label(latency),
            latency.explanation.as_deref().map_or_else(|| "—".to_string(), text),
        );
    }
    h.push_str("</table>\n");
    h.push_str(&latency_chart(&report.latencies));
}

fn latency_mark(latency: &Latency) -> (&'static str, &'static str) {
    match latency.verdict() {
        LatencyVerdict::NotMeasured => ("skip", "⏭"),
        LatencyVerdict::Early => ("warn", "⚠️"),
        LatencyVerdict::Within => ("pass", "✅"),
        LatencyVerdict::OverExplained => ("neutral", "ℹ️"),
        LatencyVerdict::Over => ("warn", "⚠️"),
    }
}

fn status_cell(status: &Status) -> String {
    match status {
        Status::Passed => "<span class=\"pass\">✅ passed</span>".into(),
        Status::Failed => "<span class=\"fail\">❌ failed</span>".into(),
        Status::NotRun { reason } => format!("<span class=\"skip\">⏭ not run: {}</span>", text(reason)),
        Status::Interrupted { .. } => format!("<span class=\"warn\">⏹ {}</span>", text(&status.label())),
    }
}

fn mark_class(mark: &Mark) -> &'static str {
    match mark {
        Mark::Pass => "pass",
        Mark::Fail => "fail",
        Mark::Warn => "warn",
        Mark::Neutral => "neutral",
    }
}

fn mark_icon(mark: &Mark) -> &'static str {
    match mark {
        Mark::Pass => "✅",
        Mark::Fail => "❌",
        Mark::Warn => "⚠️",
        Mark::Neutral => "—",
    }
}

/// The scenario's logs, linked when the path is a plain relative path (the
/// page sits in the run directory the paths are relative to).
fn logs(scenario: &ScenarioResult) -> String {
    let links: Vec<String> = scenario
        .logs
        .iter()
        .map(|log| {
            let plain = !log.is_empty()
                && !log.contains(':')
                && !log.starts_with(['/', '\\'])
                && !log.split(['/', '\\']).any(|part| part == "..");
            if plain { format!("<a href=\"{}\">{}</a>", esc(log), esc(log)) } else { text(log) }
        })
        .collect();
    links.join(", ")
}

// ---- SVG ----

/// A line plot of `points` (seconds, value) with an optional budget line.
struct Plot {
    title: &'static str,
    unit: &'static str,
    points: Vec<(f64, f64)>,
    budget: Option<f64>,
    /// Drawn red when enforced, grey when not (emulated CPU).
    enforced: bool,
}

const PLOT_W: f64 = 380.0;
const PLOT_H: f64 = 180.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 26.0;

fn line_plot(plot: &Plot) -> String {
    let points: Vec<(f64, f64)> = plot.points.iter().copied().filter(|(t, v)| t.is_finite() && v.is_finite()).collect();
    let x_max = points.iter().map(|p| p.0).fold(0.0_f64, f64::max);
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let y_max = nice_ceiling(points.iter().map(|p| p.1).chain(plot.budget).fold(0.0_f64, f64::max) * 1.05);
    let inner_w = PLOT_W - LEFT - RIGHT;
    let inner_h = PLOT_H - TOP - BOTTOM;
    let x = |t: f64| LEFT + t.max(0.0) / x_max * inner_w;
    let y = |v: f64| TOP + inner_h - v.max(0.0) / y_max * inner_h;

    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{PLOT_W}\" height=\"{PLOT_H}\" viewBox=\"0 0 {PLOT_W} {PLOT_H}\" role=\"img\">\n\
         <title>{} over time ({})</title>\n",
        esc(plot.title),
        esc(plot.unit)
    );
    for fraction in [0.0, 0.5, 1.0] {
        let value = y_max * fraction;
        let _ = writeln!(
            s,
            "<line class=\"grid\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} {}</text>",
            LEFT,
            y(value),
            LEFT + inner_w,
            y(value),
            LEFT - 4.0,
            y(value) + 4.0,
            tick(value),
            esc(plot.unit)
        );
    }
    let _ = writeln!(
        s,
        "<line class=\"axis\" x1=\"{LEFT:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
         <text x=\"{LEFT:.1}\" y=\"{:.1}\">0 s</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        TOP + inner_h,
        LEFT + inner_w,
        TOP + inner_h,
        PLOT_H - 8.0,
        LEFT + inner_w,
        PLOT_H - 8.0,
        seconds(x_max)
    );
    if let Some(budget) = plot.budget.filter(|b| b.is_finite()) {
        let class = if plot.enforced { "budget" } else { "budget-off" };
        let _ = writeln!(
            s,
            "<line class=\"{class}\" x1=\"{LEFT:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">budget {} {}</text>",
            y(budget),
            LEFT + inner_w,
            y(budget),
            LEFT + inner_w,
            y(budget) - 3.0,
            tick(budget),
            esc(plot.unit)
        );
    }
    match points.as_slice() {
        [] => {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no valid samples</text>",
                LEFT + inner_w / 2.0,
                TOP + inner_h / 2.0
            );
        }
        [(t, v)] => {
            let _ = writeln!(s, "<circle class=\"dot\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"/>", x(*t), y(*v));
        }
        _ => {
            let coords: Vec<String> = points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
            let _ = writeln!(s, "<polyline class=\"series\" points=\"{}\"/>", coords.join(" "));
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Horizontal bars per alert: the bound (grey) above the measured latency
/// (blue within, amber over and unexplained, purple over and explained).
fn latency_chart(latencies: &[Latency]) -> String {
    const WIDTH: f64 = 760.0;
    const LABEL: f64 = 260.0;
    const ROW: f64 = 34.0;
    const HEAD: f64 = 22.0;
    let bar_w = WIDTH - LABEL - 130.0;
    let scale_max = latencies
        .iter()
        .flat_map(|l| [Some(l.bound_s), l.measured_s])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let scale_max = if scale_max > 0.0 { scale_max } else { 1.0 };
    let len = |v: f64| (v.max(0.0) / scale_max * bar_w).max(1.0);
    let height = HEAD + ROW * latencies.len() as f64 + 6.0;
    let mut s = format!(
        "<figure>\n<figcaption>alert latency: measured against bound</figcaption>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.1}\" viewBox=\"0 0 {WIDTH} {height:.1}\" role=\"img\">\n\
         <title>alert latency, measured against bound</title>\n",
    );
    // The legend: one swatch per bar class, left to right.
    let mut x = LABEL;
    for (class, label) in
        [("bound", "bound"), ("measured", "measured"), ("over", "over, unexplained"), ("explained", "over, explained")]
    {
        let _ = write!(
            s,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"4\" width=\"10\" height=\"10\"/><text x=\"{:.1}\" y=\"13\">{label}</text>",
            x + 14.0
        );
        x += 24.0 + 6.5 * label.len() as f64;
    }
    s.push('\n');
    for (i, latency) in latencies.iter().enumerate() {
        let top = HEAD + ROW * i as f64;
        let label = format!("{} / {}", latency.scenario, latency.alert);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LABEL - 6.0,
            top + 18.0,
            esc(&shorten(&label, 40))
        );
        if latency.bound_s.is_finite() {
            let _ = writeln!(
                s,
                "<rect class=\"bound\" x=\"{LABEL:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"11\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                top + 2.0,
                len(latency.bound_s),
                LABEL + len(latency.bound_s) + 4.0,
                top + 11.0,
                seconds(latency.bound_s)
            );
        }
        match latency.measured_s.filter(|m| m.is_finite()) {
            Some(measured) => {
                let class = match latency.verdict() {
                    LatencyVerdict::Over | LatencyVerdict::Early => "over",
                    LatencyVerdict::OverExplained => "explained",
                    _ => "measured",
                };
                let _ = writeln!(
                    s,
                    "<rect class=\"{class}\" x=\"{LABEL:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"11\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                    top + 15.0,
                    len(measured),
                    LABEL + len(measured) + 4.0,
                    top + 24.0,
                    esc(&format!("{} ({})", seconds(measured), delta_text(latency.delta_percent())))
                );
            }
            None => {
                let _ = writeln!(s, "<text x=\"{LABEL:.1}\" y=\"{:.1}\">not measured</text>", top + 24.0);
            }
        }
    }
    s.push_str("</svg>\n</figure>\n");
    s
}

/// The smallest 1, 2, 2.5 or 5 × 10ⁿ at least `value` (1 for nothing to show):
/// the top of a plot's value axis, so its ticks (0, half, top) are round numbers.
fn nice_ceiling(value: f64) -> f64 {
    if !(value.is_finite() && value > 0.0) {
        return 1.0;
    }
    let power = 10_f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * power).find(|top| *top >= value).unwrap_or(10.0 * power)
}

/// A tick value without trailing zeros: `125`, `1.25`, `0.5`.
fn tick(value: f64) -> String {
    let text = format!("{:.2}", value + 0.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// At most `max` characters, with `…` when cut (SVG text does not wrap).
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// User text for an element: cut to [`FIELD_LIMIT`], escaped.
fn text(value: &str) -> String {
    esc(&truncate(value, FIELD_LIMIT))
}

/// HTML-escaped text, safe in elements and in double- or single-quoted attributes.
fn esc(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_escapes_markup_and_quotes() {
        assert_eq!(esc(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn axis_tops_are_round() {
        let check = |value: f64, top: f64| assert_eq!(nice_ceiling(value), top, "{value}");
        check(0.0, 1.0);
        check(f64::NAN, 1.0);
        check(0.3, 0.5);
        check(1.0, 1.0);
        check(1.01, 2.0);
        check(134.4, 200.0);
        check(240.0, 250.0);
        check(3000.0, 5000.0);
        assert_eq!([tick(125.0), tick(1.25), tick(0.5), tick(0.0)], ["125", "1.25", "0.5", "0"]);
    }

    #[test]
    fn shorten_counts_characters() {
        assert_eq!(shorten("ééééé", 3), "éé…");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
