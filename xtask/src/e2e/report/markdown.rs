//! `summary.md`: GitHub-flavoured Markdown for `$GITHUB_STEP_SUMMARY`.
//!
//! Most important first (verdict, counts, warnings, scenarios, failing steps,
//! resources, latencies, notes), so the 1 MiB cap GitHub puts on a step summary
//! only ever cuts the tail: the document is built from whole blocks (a heading,
//! a table row, a failing step) and once one does not fit, it and everything
//! after are left out and a note says so. Each long field is also cut to
//! [`FIELD_LIMIT`], saying so. User text is escaped (tables, inline) or fenced
//! with a fence longer than any backtick run in it (code blocks).

use std::fmt::Write as _;

use super::{
    LatencyVerdict, Mark, Outcome, Report, SUMMARY_LIMIT_BYTES, Status, delta_text, latency_label, mib, millicores,
    num, seconds, seconds_opt, truncate,
};

/// Longest text of one field (message, expected, actual, reason, note).
const FIELD_LIMIT: usize = 4 * 1024;

/// Room kept for the truncation note.
const NOTE_RESERVE: usize = 512;

pub(super) fn render(report: &Report) -> String {
    render_with_limit(report, SUMMARY_LIMIT_BYTES)
}

fn render_with_limit(report: &Report, limit: usize) -> String {
    let mut doc = Doc::new(limit);
    let counts = report.counts();
    let (icon, verdict) = match report.outcome() {
        Outcome::Passed => ("✅", "passed"),
        Outcome::Failed => ("❌", "failed"),
        Outcome::Interrupted => ("⏹", "interrupted"),
    };
    doc.push(format!("# {icon} e2e {verdict}\n\n"));
    doc.push(format!(
        "**{}** · {} · {} latency warning{}\n\n",
        counts.scenario_line(),
        counts.budget_line(),
        counts.latency_warnings,
        if counts.latency_warnings == 1 { "" } else { "s" }
    ));
    doc.push(format!(
        "Run {} · started {} · {} · backend {} · profile {} · arch {} · tool {} · bundle {}\n\n",
        inline(&report.run_id),
        inline(&report.started),
        seconds(report.duration_s),
        inline(&report.backend_label()),
        inline(&report.profile),
        inline(&report.arch_label()),
        inline(&report.tool),
        inline(&report.bundle),
    ));
    if let Some(phases) = report.phases_line() {
        doc.push(format!("Phases: {}\n\n", inline(&phases)));
    }

    let warnings = report.warnings();
    if !warnings.is_empty() {
        doc.push("## ⚠️ Warnings\n\n".into());
        for warning in &warnings {
            doc.push(format!("- {}\n", inline(warning)));
        }
        doc.push("\n".into());
    }

    scenarios(&mut doc, report);
    failing_steps(&mut doc, report);
    resources(&mut doc, report);
    links(&mut doc, report);
    latencies(&mut doc, report);

    if !report.notes.is_empty() {
        doc.push("## Notes\n\n".into());
        for note in &report.notes {
            doc.push(format!("- {}\n", inline(note)));
        }
        doc.push("\n".into());
    }
    doc.finish()
}

fn scenarios(doc: &mut Doc, report: &Report) {
    doc.push("## Scenarios\n\n".into());
    if report.scenarios.is_empty() {
        doc.push("No scenario in this run.\n\n".into());
        return;
    }
    doc.push("| | scenario | file | steps | duration |\n|---|---|---|---|---|\n".into());
    for scenario in &report.scenarios {
        let passed = scenario.steps.iter().filter(|s| s.status.is_passed()).count();
        doc.push(format!(
            "| {} | {} | {} | {passed}/{} passed | {} |\n",
            status_cell(&scenario.verdict()),
            inline(&scenario.name),
            inline(&scenario.file),
            scenario.steps.len(),
            seconds(scenario.duration_s),
        ));
    }
    doc.push("\n".into());
}

fn failing_steps(doc: &mut Doc, report: &Report) {
    let failed: Vec<_> = report.scenarios.iter().filter(|s| s.verdict().is_failed()).collect();
    if failed.is_empty() {
        return;
    }
    doc.push("## Failing steps\n\n".into());
    for scenario in failed {
        let steps: Vec<_> = scenario.steps.iter().filter(|s| s.status.is_failed()).collect();
        let mut block = String::new();
        if steps.is_empty() {
            let _ = writeln!(block, "### ❌ {}\n", inline(&scenario.name));
            block.push_str("The scenario failed without a failing step.\n\n");
        }
        for step in steps {
            let _ = writeln!(block, "### ❌ {} › {}\n", inline(&scenario.name), inline(&step.name));
            block.push_str(&code_block(&step.failure_text_cut(FIELD_LIMIT)));
            block.push('\n');
        }
        if !scenario.logs.is_empty() {
            let logs: Vec<String> = scenario.logs.iter().map(|l| inline(l)).collect();
            let _ = writeln!(block, "Logs: {}\n", logs.join(", "));
        }
        doc.push(block);
    }
}

fn resources(doc: &mut Doc, report: &Report) {
    if report.resources.is_empty() {
        return;
    }
    doc.push("## Edge resources\n\n".into());
    doc.push(
        "Memory is checked on its maximum, CPU on its 95th percentile (nearest rank); \
         figures measured under emulation (qemu's own memory and CPU included) are shown but not enforced.\n\n"
            .into(),
    );
    doc.push(
        "| component | node | container | samples | memory p50 / p95 / max (MiB) | memory budget \
         | CPU p50 / p95 / max (m) | CPU budget | budget |\n|---|---|---|---:|---:|---:|---:|---:|---|\n"
            .into(),
    );
    for series in &report.resources {
        let summary = series.summary();
        let verdict = series.verdict(&summary);
        let memory = summary.memory_bytes.map_or_else(
            || "—".to_string(),
            |m| format!("{} / {} / {}", mib_number(m.p50), mib_number(m.p95), mib_number(m.max)),
        );
        let cpu = summary
            .cpu_millicores
            .map_or_else(|| "—".to_string(), |c| format!("{} / {} / {}", num(c.p50, 1), num(c.p95, 1), num(c.max, 1)));
        doc.push(format!(
            "| {} | {} | {} | {} | {memory} | {} | {cpu} | {} | {} {} |\n",
            inline(&series.label()),
            inline(&series.node),
            inline(&series.container),
            summary.samples,
            series.budget_memory_bytes.map_or_else(|| "—".to_string(), mib),
            series.budget_cpu_millicores.map_or_else(|| "—".to_string(), |c| millicores(c as f64)),
            mark_icon(&verdict.mark),
            inline(&verdict.text),
        ));
    }
    doc.push("\n".into());
}

fn links(doc: &mut Doc, report: &Report) {
    if report.links.is_empty() {
        return;
    }
    doc.push("## Edge links\n\n".into());
    doc.push(format!(
        "Bytes over each edge's interface on the cloud network, per minute: at steady state (against the budget, both \
         directions) and replaying a buffer in the {:.0} s after a cut or restart.\n\n",
        super::REPLAY_WINDOW_S
    ));
    doc.push(
        "| node | steady s | sent | received | replay sent | replay received | budget | verdict |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n"
            .into(),
    );
    for link in &report.links {
        let summary = link.summary();
        let verdict = link.verdict(&summary);
        let [sent, received, replay_sent, replay_received, budget] = link.cells(&summary);
        doc.push(format!(
            "| {} | {} | {sent} | {received} | {replay_sent} | {replay_received} | {budget} | {} {} |\n",
            inline(&link.node),
            num(summary.steady_s, 0),
            mark_icon(&verdict.mark),
            inline(&verdict.text),
        ));
    }
    doc.push("\n".into());
}

fn latencies(doc: &mut Doc, report: &Report) {
    if report.latencies.is_empty() {
        return;
    }
    doc.push("## Alert latency\n\n".into());
    doc.push(format!(
        "From the fault to the alert firing; more than {:.0}% over the bound without an \
         explanation is a warning.\n\n",
        super::LATENCY_TOLERANCE * 100.0
    ));
    doc.push(
        "| scenario | alert | bound | measured | delta | | explanation |\n|---|---|---:|---:|---:|---|---|\n".into(),
    );
    for latency in &report.latencies {
        let icon = match latency.verdict() {
            LatencyVerdict::NotMeasured => "⏭",
            LatencyVerdict::Early => "⚠️",
            LatencyVerdict::Within => "✅",
            LatencyVerdict::OverExplained => "ℹ️",
            LatencyVerdict::Over => "⚠️",
        };
        doc.push(format!(
            "| {} | {} | {} | {} | {} | {icon} {} | {} |\n",
            inline(&latency.scenario),
            inline(&latency.alert),
            seconds(latency.bound_s),
            seconds_opt(latency.measured_s),
            delta_text(latency.delta_percent()),
            latency_label(latency),
            latency.explanation.as_deref().map_or_else(|| "—".to_string(), inline),
        ));
    }
    doc.push("\n".into());
}

fn status_cell(status: &Status) -> String {
    match status {
        Status::Passed => "✅ passed".into(),
        Status::Failed => "❌ failed".into(),
        Status::NotRun { reason } => format!("⏭ not run: {}", inline(reason)),
        Status::Interrupted { .. } => format!("⏹ {}", inline(&status.label())),
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

/// MiB without the unit (the column header has it).
fn mib_number(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// User text made safe for one line of Markdown (a table cell, a list item):
/// cut to [`FIELD_LIMIT`], line breaks as spaces, Markdown and HTML
/// punctuation escaped so it shows as written.
fn inline(text: &str) -> String {
    let text = truncate(text, FIELD_LIMIT);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\r' => {}
            '\n' | '\t' => out.push(' '),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A fenced code block holding `text` verbatim, its fence longer than any
/// backtick run inside.
fn code_block(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    let mut block = format!("{fence}text\n{text}");
    if !block.ends_with('\n') {
        block.push('\n');
    }
    let _ = writeln!(block, "{fence}");
    block
}

/// A document that keeps under a byte limit by leaving out whole blocks.
struct Doc {
    text: String,
    limit: usize,
    omitted: usize,
}

impl Doc {
    fn new(limit: usize) -> Self {
        Doc { text: String::new(), limit, omitted: 0 }
    }

    /// Append `block`, or leave it (and, to stay coherent, all later blocks) out
    /// when it would not fit.
    fn push(&mut self, block: String) {
        if self.omitted > 0 || self.text.len() + block.len() + NOTE_RESERVE > self.limit {
            self.omitted += 1;
        } else {
            self.text.push_str(&block);
        }
    }

    fn finish(mut self) -> String {
        if self.omitted > 0 {
            let _ = write!(
                self.text,
                "\n\n> ⚠️ **Summary truncated** to stay under GitHub's 1 MiB step-summary limit: \
                 {} more block{} left out. The full report is in report.html and report.json.\n",
                self.omitted,
                if self.omitted == 1 { "" } else { "s" }
            );
        }
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_block_fence_outgrows_backticks_inside() {
        assert_eq!(code_block("a ```` b"), "`````text\na ```` b\n`````\n");
        assert_eq!(code_block("plain"), "```text\nplain\n```\n");
    }

    #[test]
    fn inline_escapes_markdown_and_html() {
        assert_eq!(inline("a|b <x> *y*\nz"), r"a\|b &lt;x&gt; \*y\* z");
    }
}
