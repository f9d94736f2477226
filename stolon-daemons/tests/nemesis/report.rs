//! The run's record: every event as a JSON line (printed as it happens and written to `events.jsonl` in the
//! output directory), and the summary table at the end.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use super::checkers::{Recovery, Violation};
use super::faults::Kind;
use super::workload::History;

/// The event log of a run.
pub struct Events {
    origin: Instant,
    file: Option<Mutex<std::fs::File>>,
    lines: Mutex<Vec<Value>>,
}

impl Events {
    /// A log whose times count from `origin`, written to `<dir>/events.jsonl` when `dir` is given.
    pub fn new(origin: Instant, dir: Option<&Path>) -> Events {
        let file = dir.and_then(|d| std::fs::File::create(d.join("events.jsonl")).ok()).map(Mutex::new);
        Events { origin, file, lines: Mutex::default() }
    }

    /// Milliseconds since the origin.
    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Records an event `kind` with `fields`.
    pub fn log(&self, kind: &str, fields: Value) {
        let mut line = json!({ "t_ms": self.now_ms(), "event": kind });
        if let (Some(l), Value::Object(f)) = (line.as_object_mut(), fields) {
            l.extend(f);
        }
        eprintln!("nemesis: {line}");
        if let Some(f) = &self.file {
            let _ = writeln!(f.lock().expect("events file"), "{line}");
        }
        self.lines.lock().expect("events").push(line);
    }

    /// The timeline: every event and every violation, in time order, one line each.
    pub fn timeline(&self, violations: &[Violation]) -> String {
        let mut all: Vec<(u64, String)> = self
            .lines
            .lock()
            .expect("events")
            .iter()
            .map(|l| (l["t_ms"].as_u64().unwrap_or(0), l.to_string()))
            .collect();
        all.extend(violations.iter().map(|v| (v.at_ms, format!("VIOLATION {}: {}", v.checker, v.detail))));
        all.sort_by_key(|(t, _)| *t);
        all.into_iter().map(|(t, l)| format!("{:>9.1}s {l}", t as f64 / 1000.0)).collect::<Vec<_>>().join("\n")
    }
}

/// The summary of a run.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub faults: usize,
    pub by_kind: BTreeMap<String, KindStats>,
    pub acknowledged_writes: usize,
    pub failed_writes: usize,
    pub probes: usize,
    pub lost: usize,
    pub dual_master_instants: usize,
    pub non_master_writes: usize,
    pub read_back_failures: usize,
    pub slow_recoveries: usize,
    pub duration_s: f64,
}

/// Per kind of fault: how many, and recovery times after the heal (writes through every proxy; healthy).
#[derive(Debug, Default, Serialize)]
pub struct KindStats {
    pub count: usize,
    pub writes_mean_s: f64,
    pub writes_max_s: f64,
    pub healthy_mean_s: f64,
    pub healthy_max_s: f64,
}

impl Summary {
    /// Builds the summary.
    pub fn new(
        seed: u64,
        kinds: &[Kind],
        recoveries: &[Recovery],
        h: &History,
        v: &[Violation],
        duration_s: f64,
    ) -> Summary {
        let mut by_kind: BTreeMap<String, Vec<&Recovery>> = BTreeMap::new();
        for (k, r) in kinds.iter().zip(recoveries) {
            by_kind.entry(k.name()).or_default().push(r);
        }
        let stats = |rs: &[&Recovery], f: fn(&Recovery) -> Option<u64>| -> (f64, f64) {
            let xs: Vec<f64> = rs.iter().filter_map(|r| f(r)).map(|ms| ms as f64 / 1000.0).collect();
            if xs.is_empty() {
                return (0.0, 0.0);
            }
            (xs.iter().sum::<f64>() / xs.len() as f64, xs.iter().cloned().fold(0.0, f64::max))
        };
        let by_kind = by_kind
            .into_iter()
            .map(|(k, rs)| {
                let (writes_mean_s, writes_max_s) = stats(&rs, |r| r.writes_ms.map(|w| w.saturating_sub(r.healed_ms)));
                let (healthy_mean_s, healthy_max_s) =
                    stats(&rs, |r| r.healthy_ms.map(|h| h.saturating_sub(r.healed_ms)));
                (k, KindStats { count: rs.len(), writes_mean_s, writes_max_s, healthy_mean_s, healthy_max_s })
            })
            .collect();
        let count = |c: &str| v.iter().filter(|x| x.checker == c).count();
        Summary {
            seed,
            faults: kinds.len(),
            by_kind,
            acknowledged_writes: h.acks.len(),
            failed_writes: h.failed,
            probes: h.probes.len(),
            lost: count("lost-write"),
            dual_master_instants: count("dual-master"),
            non_master_writes: count("non-master-write"),
            read_back_failures: count("read-back"),
            slow_recoveries: count("recovery"),
            duration_s,
        }
    }

    /// The summary as a Markdown table (as docs/reliability.md shows it).
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| fault | count | writes back after heal, mean / max (s) | healthy after heal, mean / max (s) |\n|---|---|---|---|\n",
        );
        for (k, st) in &self.by_kind {
            s.push_str(&format!(
                "| {k} | {} | {:.1} / {:.1} | {:.1} / {:.1} |\n",
                st.count, st.writes_mean_s, st.writes_max_s, st.healthy_mean_s, st.healthy_max_s
            ));
        }
        s.push_str(&format!(
            "\nseed {}, {} faults in {:.0} s: {} acknowledged writes ({} failed or unknown), {} probes; lost {}, \
             dual-master instants {}, writes accepted by a non-master {}, read-back failures {}, recoveries over \
             the bound {}\n",
            self.seed,
            self.faults,
            self.duration_s,
            self.acknowledged_writes,
            self.failed_writes,
            self.probes,
            self.lost,
            self.dual_master_instants,
            self.non_master_writes,
            self.read_back_failures,
            self.slow_recoveries
        ));
        s
    }

    /// Writes `summary.json` and `summary.md` to `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(self).unwrap_or_default())?;
        let path = dir.join("summary.md");
        std::fs::write(&path, self.table())?;
        Ok(path)
    }
}
