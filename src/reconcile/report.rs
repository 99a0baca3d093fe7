//! What a run shows: a progress line per hour as it ends, then a summary table, or one
//! JSON document for scripts.

use std::io::Write;

use super::state::HourReport;

/// The line printed when an hour ends (and `reconcile status`'s rows).
pub fn line(report: &HourReport, earlier: bool) -> String {
    let c = &report.counts;
    let refused: u64 = c.refused.values().sum();
    let mut line = format!(
        "{} (Beijing {}) {:<5} app {} {:<9} archived {} already {} missing {} published {} unreadable {} refused {}",
        report.hour,
        report.beijing_hour,
        report.chat_type.as_str(),
        report.sdk_app_id,
        report.outcome.as_str(),
        c.archived,
        c.already,
        c.missing,
        c.published,
        c.unreadable,
        refused,
    );
    if earlier {
        line.push_str(&format!(
            " (done earlier, at {}; --force redoes it)",
            report.at
        ));
    }
    if let Some(reason) = &report.reason {
        line.push_str(": ");
        line.push_str(reason);
    }
    line
}

/// The summary table.
pub fn table(reports: &[HourReport], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<21} {:<11} {:<5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}  outcome",
        "hour (UTC)",
        "Beijing",
        "chat",
        "app",
        "archived",
        "already",
        "published",
        "unreadable",
        "refused"
    )?;
    for r in reports {
        let c = &r.counts;
        writeln!(
            out,
            "{:<21} {:<11} {:<5} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}  {}",
            r.hour,
            r.beijing_hour,
            r.chat_type.as_str(),
            r.sdk_app_id,
            c.archived,
            c.already,
            c.published,
            c.unreadable,
            c.refused.values().sum::<u64>(),
            r.outcome.as_str(),
        )?;
    }
    Ok(())
}

/// `--json`: every hour, and whether the run reconciled all it was asked.
pub fn json(reports: &[HourReport], complete: bool) -> String {
    serde_json::json!({ "complete": complete, "hours": reports }).to_string()
}
