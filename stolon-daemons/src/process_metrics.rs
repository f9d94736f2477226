//! The standard Prometheus process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, `process_start_time_seconds`, ...) read from Linux's `/proc` at scrape time, under the
//! names the Go client (and so stolon's daemons) exports. On a system without `/proc` nothing is exported.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Registers the process metrics of the calling process on `registry`.
pub fn register_process_metrics(registry: &mut Registry) {
    registry.register_collector(Box::new(ProcessCollector));
}

/// One reading of the process figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessSample {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_memory_bytes: i64,
    /// Virtual memory size, in bytes.
    pub virtual_memory_bytes: i64,
    /// Start time since the Unix epoch, in seconds.
    pub start_time_seconds: f64,
    /// Number of threads.
    pub threads: i64,
    /// Open file descriptors.
    pub open_fds: i64,
    /// The soft limit of open file descriptors.
    pub max_fds: i64,
}

/// The fields of `/proc/<pid>/stat` the metrics need, in the units the kernel reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFields {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Number of threads.
    pub threads: i64,
    /// Start time after boot, in clock ticks.
    pub start_ticks: u64,
    /// Virtual memory size, in bytes.
    pub vsize_bytes: u64,
    /// Resident set size, in pages.
    pub rss_pages: i64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses, so fields are
/// counted from its closing parenthesis.
pub fn parse_stat(stat: &str) -> Option<StatFields> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0, so field N is index N - 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |field: usize| f.get(field - 3)?.parse::<i64>().ok();
    Some(StatFields {
        cpu_ticks: u64::try_from(num(14)? + num(15)?).ok()?,
        threads: num(20)?,
        start_ticks: u64::try_from(num(22)?).ok()?,
        vsize_bytes: u64::try_from(num(23)?).ok()?,
        rss_pages: num(24)?,
    })
}

/// The boot time (`btime`, seconds since the epoch) from `/proc/stat`.
pub fn parse_boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The soft limit of "Max open files" from `/proc/<pid>/limits` (`unlimited` as `i64::MAX`).
pub fn parse_max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" { Some(i64::MAX) } else { soft.parse().ok() }
}

/// Combines the parsed files into a sample; `ticks_per_second` and `page_size` come from sysconf.
pub fn sample_from(stat: StatFields, boot_time: u64, ticks_per_second: u64, page_size: i64) -> ProcessSample {
    let ticks = ticks_per_second.max(1) as f64;
    ProcessSample {
        cpu_seconds: stat.cpu_ticks as f64 / ticks,
        resident_memory_bytes: stat.rss_pages.saturating_mul(page_size),
        virtual_memory_bytes: i64::try_from(stat.vsize_bytes).unwrap_or(i64::MAX),
        start_time_seconds: boot_time as f64 + stat.start_ticks as f64 / ticks,
        threads: stat.threads,
        open_fds: 0,
        max_fds: 0,
    }
}

/// Reads the current process's figures from `/proc/self`; `None` when `/proc` is not there or unreadable.
pub fn read_self() -> Option<ProcessSample> {
    let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
    // SAFETY: sysconf only reads a configuration value.
    let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    let mut sample = sample_from(stat, boot, u64::try_from(ticks).ok()?, page);
    sample.open_fds = count_open_fds(std::path::Path::new("/proc/self/fd"))?;
    sample.max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|l| parse_max_open_files(&l))?;
    Some(sample)
}

/// The entries of a `/proc/<pid>/fd` directory, less the descriptor the listing itself holds open while it
/// is read (it appears in its own listing).
pub fn count_open_fds(dir: &std::path::Path) -> Option<i64> {
    let entries = std::fs::read_dir(dir).ok()?.count();
    i64::try_from(entries.saturating_sub(1)).ok()
}

/// Encodes [`read_self`] at every scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = read_self() else { return Ok(()) };
        // The text encoder appends `_total` to counters.
        let cpu = ConstCounter::new(s.cpu_seconds);
        encode_one(&mut encoder, "process_cpu_seconds", "Total user and system CPU time spent in seconds", cpu)?;
        let start = ConstGauge::new(s.start_time_seconds);
        let start_help = "Start time of the process since unix epoch in seconds";
        encode_one(&mut encoder, "process_start_time_seconds", start_help, start)?;
        let gauges = [
            ("process_resident_memory_bytes", "Resident memory size in bytes", s.resident_memory_bytes),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes", s.virtual_memory_bytes),
            ("process_open_fds", "Number of open file descriptors", s.open_fds),
            ("process_max_fds", "Maximum number of open file descriptors", s.max_fds),
            ("process_threads", "Number of OS threads in the process", s.threads),
        ];
        for (name, help, value) in gauges {
            encode_one(&mut encoder, name, help, ConstGauge::new(value))?;
        }
        Ok(())
    }
}

/// Encodes `metric` under `name` with `help`.
fn encode_one(encoder: &mut DescriptorEncoder, name: &str, help: &str, metric: impl EncodeMetric) -> std::fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real /proc/<pid>/stat line, with a command name holding a space and a parenthesis.
    const STAT: &str = "4242 (stolon (x) d) S 1 4242 4242 0 -1 4194560 1566 0 0 0 250 50 0 0 20 0 7 0 \
                        123400 912384000 5120 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn parses_stat_after_the_command_name() {
        let f = parse_stat(STAT).unwrap();
        assert_eq!(
            f,
            StatFields { cpu_ticks: 300, threads: 7, start_ticks: 123_400, vsize_bytes: 912_384_000, rss_pages: 5120 }
        );
        assert_eq!(parse_stat("12 (truncated) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn converts_units() {
        let s = sample_from(parse_stat(STAT).unwrap(), 1_700_000_000, 100, 4096);
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.resident_memory_bytes, 5120 * 4096);
        assert_eq!(s.start_time_seconds, 1_700_001_234.0);
        assert_eq!(s.threads, 7);
    }

    #[test]
    fn parses_boot_time_and_limits() {
        assert_eq!(parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"), Some(1_700_000_000));
        assert_eq!(parse_boot_time("cpu 1\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        assert_eq!(
            parse_max_open_files("Max open files            unlimited            unlimited            files"),
            Some(i64::MAX)
        );
    }

    #[test]
    fn counts_fds_without_the_listing_own() {
        // A plain directory stands for /proc/<pid>/fd: its listing's own descriptor is not among its entries
        // there, so the count is one short of the entries, as the subtraction states.
        let dir = tempfile::tempdir().unwrap();
        for i in 0..4 {
            std::fs::write(dir.path().join(i.to_string()), "").unwrap();
        }
        assert_eq!(count_open_fds(dir.path()), Some(3));
        assert_eq!(count_open_fds(&dir.path().join("missing")), None);
    }

    #[test]
    fn reads_this_process_and_encodes_every_metric() {
        let after = read_self().expect("/proc is readable on Linux");
        assert!(after.open_fds >= 1 && after.open_fds <= after.max_fds, "{after:?}");
        assert!(after.resident_memory_bytes > 0 && after.cpu_seconds >= 0.0 && after.threads >= 1, "{after:?}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(after.start_time_seconds > now - 3600.0 && after.start_time_seconds <= now + 1.0, "{after:?}");

        let mut registry = Registry::default();
        register_process_metrics(&mut registry);
        let text = crate::metrics::render(&registry).unwrap();
        for name in [
            "process_cpu_seconds_total ",
            "process_start_time_seconds ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_threads ",
        ] {
            assert!(text.lines().any(|l| l.starts_with(name)), "{name} missing in:\n{text}");
        }
    }
}
