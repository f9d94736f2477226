//! HTTP basic authentication of the keeper API (`--api-basic-auth-file`): the file holds `user:password` lines;
//! a request must carry one of them in its `Authorization: Basic` header.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The accepted credentials. Its `Debug` shows the user names only.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    credentials: Vec<(String, String)>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.credentials.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("BasicAuth").field("users", &users).finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Reads `--api-basic-auth-file`. Errors name the flag, the file and the line, never a password.
    pub fn from_file(path: &Path) -> Result<BasicAuth, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--api-basic-auth-file {}: cannot read it: {e}", path.display()))?;
        BasicAuth::parse(&text).map_err(|e| format!("--api-basic-auth-file {}: {e}", path.display()))
    }

    /// Parses `user:password` lines (the password is everything after the first `:`; trailing CR is
    /// removed); empty lines and lines starting with `#` are ignored. At least one pair is required.
    pub fn parse(text: &str) -> Result<BasicAuth, String> {
        let mut credentials = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (user, password) =
                line.split_once(':').ok_or_else(|| format!("line {}: expected user:password", n + 1))?;
            if user.is_empty() || password.is_empty() {
                return Err(format!("line {}: the user name and the password must not be empty", n + 1));
            }
            credentials.push((user.to_string(), password.to_string()));
        }
        if credentials.is_empty() {
            return Err("no user:password line found".into());
        }
        Ok(BasicAuth { credentials })
    }

    /// The first `user:password` pair: what a keeper or proxy sends to other keepers' APIs (failsafe mode).
    pub fn first(&self) -> Option<(String, String)> {
        self.credentials.first().cloned()
    }

    /// Whether the value of an `Authorization` header carries accepted credentials.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization.and_then(|v| std::str::from_utf8(v).ok()) else { return false };
        let Some((scheme, token)) = value.trim().split_once(' ') else { return false };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(given) = STANDARD.decode(token.trim()) else { return false };
        // Every pair is compared, in constant time for equal lengths.
        self.credentials
            .iter()
            .map(|(u, p)| constant_time_eq(&given, format!("{u}:{p}").as_bytes()))
            .fold(false, |acc, ok| acc | ok)
    }

    /// The `Authorization` header value a client sends for `user` and `password`.
    pub fn header_value(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_format() {
        let a = BasicAuth::parse("# probes\nhaproxy:s3:cret\r\n\nk8s:probe\n").unwrap();
        assert!(a.allows(Some(BasicAuth::header_value("haproxy", "s3:cret").as_bytes())));
        assert!(a.allows(Some(BasicAuth::header_value("k8s", "probe").as_bytes())));
        assert!(!format!("{a:?}").contains("cret"), "{a:?}");
        assert!(BasicAuth::parse("").unwrap_err().contains("no user:password"));
        assert!(BasicAuth::parse("justauser\n").unwrap_err().contains("line 1"));
        assert!(BasicAuth::parse("u:\n").unwrap_err().contains("empty"));
        let e = BasicAuth::from_file(Path::new("/nonexistent/auth")).unwrap_err();
        assert!(e.contains("--api-basic-auth-file") && e.contains("/nonexistent/auth"), "{e}");
    }

    #[test]
    fn header_checks() {
        let a = BasicAuth::parse("u:p").unwrap();
        assert!(a.allows(Some(b"basic dTpw")));
        assert!(!a.allows(None));
        assert!(!a.allows(Some(BasicAuth::header_value("u", "q").as_bytes())));
        assert!(!a.allows(Some(BasicAuth::header_value("u", "pp").as_bytes())));
        assert!(!a.allows(Some(b"Bearer dTpw")));
        assert!(!a.allows(Some(b"Basic !!!")));
        assert!(!a.allows(Some(b"Basic")));
        assert!(!a.allows(Some(&[0xff, 0xfe])));
    }
}
