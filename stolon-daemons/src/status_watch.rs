//! `stolonctl status --watch`: prints the cluster status again whenever it changes, until interrupted. On a
//! terminal each status replaces the previous one on screen; otherwise (a pipe, a file) every new status is
//! appended, so `status --watch --format json` is a stream of one JSON document per change.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use stolon_core::ctl;
use stolon_core::store::ClusterStore;

/// Moves the cursor home and clears the screen (ANSI), used on terminals only.
pub const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

/// How the watch renders its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchOutput {
    /// JSON (one compact document per line) instead of stolonctl's text.
    pub json: bool,
    /// Standard output is a terminal: redraw the screen instead of appending.
    pub terminal: bool,
}

/// What to print for a freshly rendered status: nothing when it equals the previous one, else the status,
/// after a screen clear on a terminal or a blank separating line between text statuses otherwise.
pub fn frame(previous: Option<&str>, current: &str, out: WatchOutput) -> Option<String> {
    if previous == Some(current) {
        return None;
    }
    Some(match (out.terminal, out.json, previous.is_some()) {
        (true, _, _) => format!("{CLEAR_SCREEN}{current}"),
        (false, false, true) => format!("\n{current}"),
        _ => current.to_string(),
    })
}

/// Renders one status in the watch's format (JSON on one line, so that each line is one document).
fn render(report: &ctl::StatusReport, json: bool) -> String {
    if json {
        // Plain strings, booleans and integers: serialising cannot fail.
        format!("{}\n", serde_json::to_string(&report.status).unwrap_or_default())
    } else {
        ctl::render_text(report)
    }
}

/// Reads the status every `interval` and prints it when it changed, until `stop` completes. A failed read is
/// reported on stderr (one line) and retried at the next interval: the watch outlives a store outage.
pub async fn watch(
    store: &ClusterStore,
    out: WatchOutput,
    interval: Duration,
    stdout: &mut dyn Write,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(stop);
    let mut previous: Option<String> = None;
    let mut last_error: Option<String> = None;
    loop {
        match ctl::gather_status(store).await {
            Ok(report) => {
                last_error = None;
                let current = render(&report, out.json);
                if let Some(text) = frame(previous.as_deref(), &current, out) {
                    stdout.write_all(text.as_bytes())?;
                    stdout.flush()?;
                }
                previous = Some(current);
            }
            Err(e) => {
                let line = e.to_string().replace('\n', " ");
                if last_error.as_deref() != Some(line.as_str()) {
                    eprintln!("stolonctl: {line} (still watching)");
                }
                last_error = Some(line);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = &mut stop => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPE_TEXT: WatchOutput = WatchOutput { json: false, terminal: false };

    #[test]
    fn unchanged_status_prints_nothing() {
        assert_eq!(frame(Some("a\n"), "a\n", PIPE_TEXT), None);
        assert_eq!(frame(Some("a\n"), "a\n", WatchOutput { json: false, terminal: true }), None);
    }

    #[test]
    fn terminal_redraws_pipe_appends() {
        let tty = WatchOutput { json: false, terminal: true };
        assert_eq!(frame(None, "a\n", tty).unwrap(), format!("{CLEAR_SCREEN}a\n"));
        assert_eq!(frame(Some("a\n"), "b\n", tty).unwrap(), format!("{CLEAR_SCREEN}b\n"));
        assert_eq!(frame(None, "a\n", PIPE_TEXT).unwrap(), "a\n");
        assert_eq!(frame(Some("a\n"), "b\n", PIPE_TEXT).unwrap(), "\nb\n");
        let json = WatchOutput { json: true, terminal: false };
        assert_eq!(frame(Some("{}\n"), "{\"a\":1}\n", json).unwrap(), "{\"a\":1}\n");
    }
}
