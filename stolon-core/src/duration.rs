//! Go-compatible durations.
//!
//! stolon stores every duration of the cluster spec as a Go `time.Duration` string (`"5s"`, `"1m0s"`,
//! `"48h0m0s"`). [`GoDuration`] parses any Go duration syntax and prints exactly what Go's
//! `Duration.String()` prints, so documents round-trip unchanged. Like Go it is a signed count of
//! nanoseconds: negative values parse (so that spec validation can reject them with a clear message).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A signed duration with nanosecond resolution, (de)serialised as a Go duration string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration {
    nanos: i64,
}

/// Why a Go duration string could not be parsed (messages follow Go's `time.ParseDuration`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationParseError {
    /// The text is not a duration at all (empty, no digits, stray characters).
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    /// A number is not followed by a unit (only `0` may stand alone).
    #[error("time: missing unit in duration {0:?}")]
    MissingUnit(String),
    /// The unit is not one of ns, us, µs, μs, ms, s, m, h.
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// The value does not fit in a signed 64-bit count of nanoseconds.
    #[error("time: invalid duration {0:?} (overflow)")]
    Overflow(String),
}

impl GoDuration {
    /// The zero duration (`"0s"`).
    pub const ZERO: GoDuration = GoDuration { nanos: 0 };

    /// A duration of `nanos` nanoseconds (may be negative).
    pub const fn from_nanos(nanos: i64) -> Self {
        GoDuration { nanos }
    }

    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: i64) -> Self {
        GoDuration { nanos: millis.saturating_mul(NANOS_PER_MILLI as i64) }
    }

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: i64) -> Self {
        GoDuration { nanos: secs.saturating_mul(NANOS_PER_SEC as i64) }
    }

    /// A duration of `mins` minutes.
    pub const fn from_mins(mins: i64) -> Self {
        Self::from_secs(mins.saturating_mul(60))
    }

    /// A duration of `hours` hours.
    pub const fn from_hours(hours: i64) -> Self {
        Self::from_secs(hours.saturating_mul(3600))
    }

    /// Converts a std duration, saturating at Go's maximum (about 292 years).
    pub fn from_std(d: std::time::Duration) -> Self {
        GoDuration { nanos: i64::try_from(d.as_nanos()).unwrap_or(i64::MAX) }
    }

    /// The signed number of nanoseconds.
    pub const fn as_nanos(&self) -> i64 {
        self.nanos
    }

    /// Whether the duration is below zero.
    pub const fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Whether the duration is exactly zero.
    pub const fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The std duration, or `None` when negative.
    pub fn to_std(&self) -> Option<std::time::Duration> {
        u64::try_from(self.nanos).ok().map(std::time::Duration::from_nanos)
    }

    /// The std duration, with negative values clamped to zero.
    pub fn to_std_saturating(&self) -> std::time::Duration {
        self.to_std().unwrap_or_default()
    }

    /// Parses Go duration syntax: an optional sign, then one or more `<number><unit>` groups where
    /// the number may have a fraction (`1.5h`, `.5s`, `2h45m`, `1h0m0.5s`), or the bare `0`.
    pub fn parse(s: &str) -> Result<Self, DurationParseError> {
        parse_go_duration(s).map(|nanos| GoDuration { nanos })
    }
}

impl From<std::time::Duration> for GoDuration {
    fn from(d: std::time::Duration) -> Self {
        GoDuration::from_std(d)
    }
}

impl FromStr for GoDuration {
    type Err = DurationParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GoDuration::parse(s)
    }
}

/// Multiplier in nanoseconds of a Go duration unit.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => NANOS_PER_MICRO,
        "ms" => NANOS_PER_MILLI,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3600 * NANOS_PER_SEC,
        _ => return None,
    })
}

/// Splits the leading ASCII digits off `s`.
fn split_digits(s: &str) -> (&str, &str) {
    let end = s.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

fn parse_go_duration(input: &str) -> Result<i64, DurationParseError> {
    let invalid = || DurationParseError::Invalid(input.to_string());
    let overflow = || DurationParseError::Overflow(input.to_string());
    // Go accepts magnitudes up to 2^63 so that the most negative value parses.
    const LIMIT: u64 = 1 << 63;

    let mut s = input;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        // Integer part.
        let (int_digits, rest) = split_digits(s);
        let mut whole: u64 = 0;
        for b in int_digits.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .filter(|v| *v <= LIMIT)
                .ok_or_else(overflow)?;
        }
        s = rest;
        // Fraction part: digits are accumulated while they fit, the rest only consumed (as Go does).
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut frac_digits = "";
        if let Some(rest) = s.strip_prefix('.') {
            let (digits, rest) = split_digits(rest);
            frac_digits = digits;
            let mut overflowed = false;
            for b in digits.bytes() {
                if overflowed {
                    continue;
                }
                match frac.checked_mul(10).and_then(|v| v.checked_add(u64::from(b - b'0'))) {
                    Some(v) if v <= LIMIT => {
                        frac = v;
                        scale *= 10.0;
                    }
                    _ => overflowed = true,
                }
            }
            s = rest;
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        // Unit: everything up to the next '.' or digit.
        let unit_end = s.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(s.len());
        let (unit, rest) = s.split_at(unit_end);
        if unit.is_empty() {
            return Err(DurationParseError::MissingUnit(input.to_string()));
        }
        let mult = unit_nanos(unit)
            .ok_or_else(|| DurationParseError::UnknownUnit { unit: unit.to_string(), input: input.to_string() })?;
        s = rest;
        if whole > LIMIT / mult {
            return Err(overflow());
        }
        let mut v = whole * mult;
        if frac > 0 {
            // Same float arithmetic as Go so that results match bit for bit.
            v = v
                .checked_add((frac as f64 * (mult as f64 / scale)) as u64)
                .filter(|v| *v <= LIMIT)
                .ok_or_else(overflow)?;
        }
        total = total.checked_add(v).filter(|t| *t <= LIMIT).ok_or_else(overflow)?;
    }
    if neg {
        Ok((total as i128).wrapping_neg() as i64)
    } else if total > i64::MAX as u64 {
        Err(overflow())
    } else {
        Ok(total as i64)
    }
}

/// Appends `.ddd` (trailing zeros dropped) for a fractional part `frac` of `digits` digits.
fn push_fraction(out: &mut String, frac: u64, digits: usize) {
    if frac == 0 {
        return;
    }
    let text = format!("{frac:0digits$}");
    out.push('.');
    out.push_str(text.trim_end_matches('0'));
}

impl fmt::Display for GoDuration {
    /// Formats exactly like Go's `time.Duration.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0s");
        }
        let u = self.nanos.unsigned_abs();
        let mut out = String::new();
        if self.nanos < 0 {
            out.push('-');
        }
        if u < NANOS_PER_SEC {
            let (div, digits, unit) = if u < NANOS_PER_MICRO {
                (1, 0, "ns")
            } else if u < NANOS_PER_MILLI {
                (NANOS_PER_MICRO, 3, "\u{b5}s")
            } else {
                (NANOS_PER_MILLI, 6, "ms")
            };
            out.push_str(&(u / div).to_string());
            push_fraction(&mut out, u % div, digits);
            out.push_str(unit);
        } else {
            let secs = u / NANOS_PER_SEC;
            let (hours, mins, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
            if hours > 0 {
                out.push_str(&format!("{hours}h{mins}m"));
            } else if mins > 0 {
                out.push_str(&format!("{mins}m"));
            }
            out.push_str(&s.to_string());
            push_fraction(&mut out, u % NANOS_PER_SEC, 9);
            out.push('s');
        }
        f.write_str(&out)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        GoDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde helpers for a [`GoDuration`] stored as an integer count of nanoseconds (Go's untagged
/// `time.Duration` fields, e.g. `ProxyInfo.ProxyTimeout`). Use with `#[serde(with = "...")]`.
pub mod as_nanos {
    use super::GoDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the duration as its signed nanosecond count.
    pub fn serialize<S: Serializer>(d: &GoDuration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(d.as_nanos())
    }

    /// Reads a signed nanosecond count.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<GoDuration, D::Error> {
        i64::deserialize(deserializer).map(GoDuration::from_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> i64 {
        match GoDuration::parse(s) {
            Ok(d) => d.as_nanos(),
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn parses_go_syntax() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("0s", 0),
            ("5s", 5 * S),
            ("+3s", 3 * S),
            ("-5s", -5 * S),
            ("300ms", 300_000_000),
            ("1.5h", 5400 * S),
            ("2h45m", (2 * 3600 + 45 * 60) * S),
            ("1h0m0.5s", 3600 * S + 500_000_000),
            ("1ns", 1),
            ("1us", 1000),
            ("1\u{b5}s", 1000),
            ("1\u{3bc}s", 1000),
            ("1ms", 1_000_000),
            ("1m", 60 * S),
            ("48h0m0s", 48 * 3600 * S),
            (".5s", 500_000_000),
            ("5.s", 5 * S),
            ("1.004s", 1_004_000_000),
            ("1.0040s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("3m45.25s", 225 * S + 250_000_000),
            ("-1.5m", -90 * S),
            ("1h1m1s1ms1us1ns", 3661 * S + 1_001_001),
            ("0.3333333333333333333h", 20 * 60 * S),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("9223372036.854775807s", i64::MAX),
            ("0.100000000000000000000h", 6 * 60 * S),
        ];
        for (text, want) in cases {
            assert_eq!(p(text), *want, "parsing {text:?}");
        }
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in ["", "-", "+", "s", ".", "-.", ".s", "+.s", "3", "1.5", "3x", "1d", "1sm", "5 s", " 5s"] {
            assert!(GoDuration::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(matches!(GoDuration::parse("3"), Err(DurationParseError::MissingUnit(_))));
        assert!(matches!(GoDuration::parse("3x"), Err(DurationParseError::UnknownUnit { .. })));
        assert!(matches!(GoDuration::parse(""), Err(DurationParseError::Invalid(_))));
        for big in ["9223372036854775808ns", "9223372036854775807ms", "3000000h", "-9223372036854775809ns"] {
            assert!(matches!(GoDuration::parse(big), Err(DurationParseError::Overflow(_))), "{big:?}");
        }
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1100, "1.1\u{b5}s"),
            (1000, "1\u{b5}s"),
            (2_200_000, "2.2ms"),
            (300_000_000, "300ms"),
            (1_500_000_000, "1.5s"),
            (5 * S, "5s"),
            (10 * S, "10s"),
            (60 * S, "1m0s"),
            (5 * 60 * S, "5m0s"),
            (75_500_000_000, "1m15.5s"),
            (3600 * S, "1h0m0s"),
            (48 * 3600 * S, "48h0m0s"),
            ((2 * 3600 + 45 * 60) * S, "2h45m0s"),
            (3600 * S + 500_000_000, "1h0m0.5s"),
            (-5 * S, "-5s"),
            (-1, "-1ns"),
            (1_000_000_001, "1.000000001s"),
            (1_234_567, "1.234567ms"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(GoDuration::from_nanos(*nanos).to_string(), *want, "formatting {nanos}ns");
        }
    }

    #[test]
    fn format_then_parse_is_identity() {
        for nanos in [0, 1, 999, 1001, 59_999_999_999, 3_600_000_000_001, -42_000_000, i64::MAX, i64::MIN] {
            let d = GoDuration::from_nanos(nanos);
            assert_eq!(GoDuration::parse(&d.to_string()), Ok(d));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_duration_survives_format_and_parse(nanos in proptest::num::i64::ANY) {
            let d = GoDuration::from_nanos(nanos);
            proptest::prop_assert_eq!(GoDuration::parse(&d.to_string()), Ok(d));
        }
    }

    #[test]
    fn serde_uses_strings() {
        let d: GoDuration = serde_json::from_str("\"1m30s\"").expect("valid duration");
        assert_eq!(d, GoDuration::from_secs(90));
        assert_eq!(serde_json::to_string(&d).expect("serialises"), "\"1m30s\"");
        assert!(serde_json::from_str::<GoDuration>("\"1x\"").is_err());
        assert!(serde_json::from_str::<GoDuration>("5").is_err());
    }

    #[test]
    fn std_conversions() {
        assert_eq!(GoDuration::from_secs(5).to_std(), Some(std::time::Duration::from_secs(5)));
        assert_eq!(GoDuration::from_secs(-5).to_std(), None);
        assert_eq!(GoDuration::from_secs(-5).to_std_saturating(), std::time::Duration::ZERO);
        assert_eq!(GoDuration::from_std(std::time::Duration::from_millis(300)), GoDuration::from_millis(300));
        assert_eq!(GoDuration::from_std(std::time::Duration::MAX).as_nanos(), i64::MAX);
        assert_eq!(GoDuration::from_hours(48), GoDuration::from_mins(48 * 60));
    }
}
