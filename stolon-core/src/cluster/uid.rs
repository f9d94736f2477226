//! Random identifiers in stolon's formats.

/// A stolon UID: 8 lowercase hex characters taken from a random UUIDv4 (cluster, DB, keeper,
/// sentinel, proxy UIDs and every `infoUID`).
pub fn new_uid() -> String {
    let simple = uuid::Uuid::new_v4().simple().to_string();
    simple.chars().take(8).collect()
}

/// A keeper boot UUID: a full canonical (hyphenated, lowercase) UUIDv4.
pub fn new_boot_uuid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_is_eight_lowercase_hex() {
        let uid = new_uid();
        assert_eq!(uid.len(), 8);
        assert!(uid.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(new_uid(), new_uid());
    }

    #[test]
    fn boot_uuid_is_canonical_v4() {
        let u = new_boot_uuid();
        assert_eq!(u.len(), 36);
        let parsed = uuid::Uuid::parse_str(&u).map(|p| p.get_version_num()).unwrap_or(0);
        assert_eq!(parsed, 4);
    }
}
