//! Consul key names and their encoding in URLs.
//!
//! Consul keys never start with `/` (stolon's libkv store trims it), so a prefix of `/stolon/cluster` and
//! `stolon/cluster` name the same keys. rs-consul puts keys into URLs as they are, so every key is
//! percent-encoded here first (only `/` and RFC 3986 unreserved characters stay as they are).

use std::fmt::Write;

/// The cluster's base key, `<prefix>/<cluster>`, without leading or trailing `/`.
pub(crate) fn cluster_base(prefix: &str, cluster: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() { cluster.to_string() } else { format!("{prefix}/{cluster}") }
}

fn keep(b: u8, slash: bool) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (slash && b == b'/')
}

fn encode(s: &str, slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if keep(b, slash) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A key as a URL path segment sequence (`/` kept).
pub(crate) fn encode_key(key: &str) -> String {
    encode(key, true)
}

/// A query parameter value.
pub(crate) fn encode_query_value(v: &str) -> String {
    encode(v, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_trims_slashes() {
        assert_eq!(cluster_base("/stolon/cluster/", "c1"), "stolon/cluster/c1");
        assert_eq!(cluster_base("stolon/cluster", "c1"), "stolon/cluster/c1");
        assert_eq!(cluster_base("/", "c1"), "c1");
    }

    #[test]
    fn keys_are_percent_encoded_except_slashes() {
        assert_eq!(encode_key("stolon/cluster/a b?c#d%e&f"), "stolon/cluster/a%20b%3Fc%23d%25e%26f");
        assert_eq!(encode_key("k-1_2.3~"), "k-1_2.3~");
        assert_eq!(encode_query_value("dc/1"), "dc%2F1");
    }
}
