//! PostgreSQL versions: the binary's (`postgres -V`) and the data directory's (`PG_VERSION`).

use std::fmt;
use std::path::Path;

use super::error::{PgError, PgResult};

/// Oldest supported major version.
pub const MIN_SUPPORTED_MAJOR: u32 = 12;
/// Newest supported major version.
pub const MAX_SUPPORTED_MAJOR: u32 = 18;

/// initdb's data checksum flags for the spec's `dataChecksums`: PostgreSQL 18's initdb enables checksums
/// by default, so disabling them takes `--no-data-checksums` there (older versions have no such flag).
pub fn initdb_checksum_args(major: Option<u32>, enabled: bool) -> &'static [&'static str] {
    match (enabled, major) {
        (true, _) => &["--data-checksums"],
        (false, Some(m)) if m >= 18 => &["--no-data-checksums"],
        (false, _) => &[],
    }
}

/// A PostgreSQL version (`major.minor`; for PG >= 10 the minor is the patch release).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgVersion {
    /// Major version (15 for 15.4).
    pub major: u32,
    /// Minor version (4 for 15.4, 0 when absent as in `17beta1`).
    pub minor: u32,
}

impl fmt::Display for PgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl PgVersion {
    /// Fails unless the major version is within [`MIN_SUPPORTED_MAJOR`]..=[`MAX_SUPPORTED_MAJOR`].
    pub fn check_supported(&self) -> PgResult<()> {
        if (MIN_SUPPORTED_MAJOR..=MAX_SUPPORTED_MAJOR).contains(&self.major) {
            Ok(())
        } else {
            Err(PgError::Version(format!(
                "PostgreSQL {self} is not supported (supported: {MIN_SUPPORTED_MAJOR} to {MAX_SUPPORTED_MAJOR})"
            )))
        }
    }
}

/// Leading decimal digits of `s` as a number, and the rest.
fn leading_number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse().ok()?;
    Some((n, &s[end..]))
}

/// Parses a version token such as `15.4`, `9.6.24`, `17beta1` or `16rc1`.
pub fn parse_version_token(token: &str) -> Option<PgVersion> {
    let (major, rest) = leading_number(token)?;
    let minor = rest.strip_prefix('.').and_then(leading_number).map(|(m, _)| m).unwrap_or(0);
    Some(PgVersion { major, minor })
}

/// Parses the output of `postgres -V`: `postgres (PostgreSQL) 15.4 (Debian 15.4-1)`.
pub fn parse_binary_version(output: &str) -> PgResult<PgVersion> {
    let bad = || PgError::Parse { what: "postgres -V output", detail: output.trim().to_string() };
    let after = output.split_once("(PostgreSQL)").map(|(_, a)| a).ok_or_else(bad)?;
    let token = after.split_whitespace().next().ok_or_else(bad)?;
    parse_version_token(token).ok_or_else(bad)
}

/// Parses the content of `PGDATA/PG_VERSION` (`15\n`, or `9.6\n` for old versions).
pub fn parse_data_version(content: &str) -> PgResult<PgVersion> {
    parse_version_token(content.trim())
        .ok_or_else(|| PgError::Parse { what: "PG_VERSION content", detail: content.trim().to_string() })
}

/// Reads `PGDATA/PG_VERSION`; `None` when the file does not exist.
pub fn read_data_version(pgdata: &Path) -> PgResult<Option<PgVersion>> {
    let path = pgdata.join("PG_VERSION");
    match std::fs::read_to_string(&path) {
        Ok(c) => parse_data_version(&c).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PgError::io("read", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_versions_of_supported_releases() {
        let v = parse_binary_version("postgres (PostgreSQL) 15.18 (Debian 15.18-1.pgdg120+1)\n").unwrap();
        assert_eq!(v, PgVersion { major: 15, minor: 18 });
        assert_eq!(parse_binary_version("postgres (PostgreSQL) 12.1").unwrap(), PgVersion { major: 12, minor: 1 });
        assert_eq!(parse_binary_version("postgres (PostgreSQL) 17beta1").unwrap(), PgVersion { major: 17, minor: 0 });
        assert_eq!(parse_binary_version("postgres (PostgreSQL) 9.6.24").unwrap(), PgVersion { major: 9, minor: 6 });
        assert!(parse_binary_version("postgres 15").is_err());
        assert!(parse_binary_version("postgres (PostgreSQL) x").is_err());
    }

    #[test]
    fn data_versions_and_support_range() {
        assert_eq!(parse_data_version("16\n").unwrap().major, 16);
        assert_eq!(parse_data_version("9.6\n").unwrap(), PgVersion { major: 9, minor: 6 });
        assert!(parse_data_version("").is_err());
        for major in 12..=18 {
            assert!(PgVersion { major, minor: 0 }.check_supported().is_ok());
        }
        assert!(PgVersion { major: 11, minor: 9 }.check_supported().is_err());
        assert!(PgVersion { major: 19, minor: 0 }.check_supported().is_err());
    }

    #[test]
    fn checksum_flags_follow_initdb_defaults() {
        assert_eq!(initdb_checksum_args(Some(15), true), ["--data-checksums"]);
        assert_eq!(initdb_checksum_args(Some(18), true), ["--data-checksums"]);
        assert!(initdb_checksum_args(Some(17), false).is_empty());
        assert!(initdb_checksum_args(None, false).is_empty());
        assert_eq!(initdb_checksum_args(Some(18), false), ["--no-data-checksums"]);
    }
}
