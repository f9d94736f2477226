//! RFC3339 timestamps compatible with Go's `time.Time` JSON encoding.
//!
//! Go writes times as RFC3339 with up to nine fractional digits, trailing zeros removed
//! (`2026-11-27T10:13:05.123456789Z`, `2026-11-27T10:13:05.5Z`, `2026-11-27T10:13:05Z`), and
//! never omits a `time.Time` field, so unset times appear as the zero time `0001-01-01T00:00:00Z`.
//! [`Timestamp`] always writes UTC (`Z`); it reads any RFC3339 offset, and `null` as the zero time.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant, (de)serialised like Go's `time.Time`. `Default` is Go's zero time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

/// Why a timestamp could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC3339 timestamp {input:?}: {reason}")]
pub struct TimestampParseError {
    /// The text that was rejected.
    pub input: String,
    /// What was wrong with it.
    pub reason: String,
}

/// Go's zero time, 0001-01-01T00:00:00Z.
fn go_zero() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|naive| Utc.from_utc_datetime(&naive))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Timestamp {
    /// Go's zero time (`0001-01-01T00:00:00Z`), meaning "never set".
    pub fn zero() -> Self {
        Timestamp(go_zero())
    }

    /// The current time.
    pub fn now() -> Self {
        Timestamp(Utc::now())
    }

    /// Wraps a chrono UTC time.
    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        Timestamp(dt)
    }

    /// The wrapped chrono UTC time.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Whether this is Go's zero time.
    pub fn is_zero(&self) -> bool {
        self.0 == go_zero()
    }

    /// Parses any RFC3339 timestamp (any offset, any number of fractional digits).
    pub fn parse(s: &str) -> Result<Self, TimestampParseError> {
        DateTime::parse_from_rfc3339(s)
            .map(|dt| Timestamp(dt.with_timezone(&Utc)))
            .map_err(|e| TimestampParseError { input: s.to_string(), reason: e.to_string() })
    }
}

impl Default for Timestamp {
    fn default() -> Self {
        Timestamp::zero()
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(dt: DateTime<Utc>) -> Self {
        Timestamp(dt)
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> Self {
        t.0
    }
}

impl FromStr for Timestamp {
    type Err = TimestampParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl fmt::Display for Timestamp {
    /// Formats like Go's `time.RFC3339Nano` in UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.with_nanosecond(0).unwrap_or(self.0);
        let text = seconds.to_rfc3339_opts(SecondsFormat::Secs, true);
        let base = text.strip_suffix('Z').unwrap_or(&text);
        f.write_str(base)?;
        // Leap seconds are stored by chrono as nanos >= 1e9; fold them into the fraction.
        let nanos = self.0.nanosecond() % 1_000_000_000;
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Go leaves a time untouched on `null`, i.e. the zero time.
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(Timestamp::zero()),
            Some(text) => Timestamp::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(input: &str) -> String {
        match Timestamp::parse(input) {
            Ok(t) => t.to_string(),
            Err(e) => panic!("{input:?}: {e}"),
        }
    }

    #[test]
    fn formats_like_go_rfc3339nano() {
        assert_eq!(Timestamp::zero().to_string(), "0001-01-01T00:00:00Z");
        assert_eq!(rt("2026-11-27T10:13:05.123456789Z"), "2026-11-27T10:13:05.123456789Z");
        assert_eq!(rt("2026-11-27T10:13:05.120000000Z"), "2026-11-27T10:13:05.12Z");
        assert_eq!(rt("2026-11-27T10:13:05.5Z"), "2026-11-27T10:13:05.5Z");
        assert_eq!(rt("2026-11-27T10:13:05.000Z"), "2026-11-27T10:13:05Z");
        assert_eq!(rt("2026-11-27T10:13:05.0001Z"), "2026-11-27T10:13:05.0001Z");
    }

    #[test]
    fn parses_offsets_into_utc() {
        assert_eq!(rt("2026-11-27T12:13:05.25+02:00"), "2026-11-27T10:13:05.25Z");
        assert_eq!(rt("2026-11-27T05:13:05-05:00"), "2026-11-27T10:13:05Z");
        assert!(Timestamp::parse("2026-11-27 10:13").is_err());
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn zero_and_default() {
        assert!(Timestamp::default().is_zero());
        assert!(Timestamp::parse("0001-01-01T00:00:00Z").map(|t| t.is_zero()).unwrap_or(false));
        assert!(!Timestamp::now().is_zero());
    }

    #[test]
    fn serde_roundtrip_and_null() {
        let t: Timestamp = serde_json::from_str("\"2026-11-27T10:13:05.123456789Z\"").expect("valid time");
        assert_eq!(serde_json::to_string(&t).expect("serialises"), "\"2026-11-27T10:13:05.123456789Z\"");
        let z: Timestamp = serde_json::from_str("null").expect("null is the zero time");
        assert!(z.is_zero());
        assert!(serde_json::from_str::<Timestamp>("\"nope\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("12").is_err());
    }
}
