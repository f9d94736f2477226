//! Byte sizes as operators write them: `16777216`, `512kB`, `16MB`, `1GB`. Units are 1024-based (like
//! PostgreSQL's memory settings): `kB` is 1024 bytes, `MB` 1024 kB, `GB` 1024 MB, `TB` 1024 GB. Units are
//! matched case-insensitively, `B` and the IEC spellings (`KiB`, `MiB`, `GiB`, `TiB`) are accepted too, and
//! spaces between the number and the unit are allowed. Used by `--read-only-max-lag` and the keeper API's
//! `?lag=`.

use std::fmt;

/// Why a byte size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByteSizeError {
    /// Nothing was given.
    #[error("empty byte size")]
    Empty,
    /// The number part is missing or is not a non-negative integer.
    #[error("invalid byte size {0:?}: expected a non-negative integer with an optional unit (kB, MB, GB, TB)")]
    Number(String),
    /// The unit is not one of the known ones.
    #[error("invalid byte size {0:?}: unknown unit (expected B, kB, MB, GB or TB, 1024-based)")]
    Unit(String),
    /// The value does not fit in 64 bits.
    #[error("byte size {0:?} is too large")]
    Overflow(String),
}

/// Parses a byte size (see the module documentation).
pub fn parse_byte_size(text: &str) -> Result<u64, ByteSizeError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(ByteSizeError::Empty);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() {
        return Err(ByteSizeError::Number(text.to_string()));
    }
    let value: u64 = number.parse().map_err(|_| ByteSizeError::Overflow(text.to_string()))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other if other.starts_with(|c: char| c == '.' || c == ',' || c.is_ascii_digit()) => {
            return Err(ByteSizeError::Number(text.to_string()));
        }
        _ => return Err(ByteSizeError::Unit(text.to_string())),
    };
    value.checked_mul(1u64 << shift).ok_or_else(|| ByteSizeError::Overflow(text.to_string()))
}

/// A byte count shown with the largest 1024-based unit that divides it exactly (`16MB`, `1536kB`, `100`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(40, "TB"), (30, "GB"), (20, "MB"), (10, "kB")] {
            if n != 0 && n % (1u64 << shift) == 0 {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_are_bytes() {
        assert_eq!(parse_byte_size("0"), Ok(0));
        assert_eq!(parse_byte_size("16777216"), Ok(16 << 20));
        assert_eq!(parse_byte_size(" 42 "), Ok(42));
        assert_eq!(parse_byte_size("42B"), Ok(42));
    }

    #[test]
    fn units_are_1024_based_and_case_insensitive() {
        assert_eq!(parse_byte_size("1kB"), Ok(1024));
        assert_eq!(parse_byte_size("512KB"), Ok(512 * 1024));
        assert_eq!(parse_byte_size("16MB"), Ok(16 * 1024 * 1024));
        assert_eq!(parse_byte_size("16mb"), Ok(16 * 1024 * 1024));
        assert_eq!(parse_byte_size("16 MiB"), Ok(16 * 1024 * 1024));
        assert_eq!(parse_byte_size("2GB"), Ok(2 << 30));
        assert_eq!(parse_byte_size("1TB"), Ok(1 << 40));
        assert_eq!(parse_byte_size("3m"), Ok(3 << 20));
    }

    #[test]
    fn bad_values_name_what_is_wrong() {
        assert_eq!(parse_byte_size(""), Err(ByteSizeError::Empty));
        assert_eq!(parse_byte_size("  "), Err(ByteSizeError::Empty));
        assert_eq!(parse_byte_size("MB"), Err(ByteSizeError::Number("MB".into())));
        assert_eq!(parse_byte_size("-1"), Err(ByteSizeError::Number("-1".into())));
        assert_eq!(parse_byte_size("1.5MB"), Err(ByteSizeError::Number("1.5MB".into())));
        assert_eq!(parse_byte_size("16XB"), Err(ByteSizeError::Unit("16XB".into())));
        assert_eq!(parse_byte_size("16 MB extra"), Err(ByteSizeError::Unit("16 MB extra".into())));
        assert_eq!(parse_byte_size("17179869184GB"), Err(ByteSizeError::Overflow("17179869184GB".into())));
        assert_eq!(
            parse_byte_size("99999999999999999999"),
            Err(ByteSizeError::Overflow("99999999999999999999".into()))
        );
        let msg = parse_byte_size("16XB").unwrap_err().to_string();
        assert!(msg.contains("16XB") && msg.contains("unknown unit"), "{msg}");
    }

    #[test]
    fn display_uses_the_largest_exact_unit() {
        assert_eq!(ByteSize(16 << 20).to_string(), "16MB");
        assert_eq!(ByteSize(1536 * 1024).to_string(), "1536kB");
        assert_eq!(ByteSize(100).to_string(), "100");
        assert_eq!(ByteSize(0).to_string(), "0");
        assert_eq!(ByteSize(3 << 40).to_string(), "3TB");
        for s in ["16MB", "1536kB", "100", "3TB"] {
            assert_eq!(ByteSize(parse_byte_size(s).unwrap()).to_string(), s);
        }
    }
}
