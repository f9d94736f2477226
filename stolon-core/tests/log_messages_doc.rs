//! docs/log-messages.md lists every fixed message of the keeper, the sentinel and the proxy, in the table of
//! its component, verbatim.

use std::path::PathBuf;

use stolon_core::{keeper, proxy, sentinel};

#[test]
fn every_message_is_in_the_table_of_its_component() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/log-messages.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut missing = Vec::new();
    for (component, messages) in
        [("keeper", keeper::messages::ALL), ("sentinel", sentinel::messages::ALL), ("proxy", proxy::messages::ALL)]
    {
        for m in messages {
            let row =
                doc.lines().any(|l| l.starts_with(&format!("| {component} |")) && l.ends_with(&format!("| `{m}` |")));
            if !row {
                missing.push(format!("{component}: {m}"));
            }
        }
    }
    assert!(missing.is_empty(), "not in docs/log-messages.md:\n{}", missing.join("\n"));
    let counts = [keeper::messages::ALL.len(), sentinel::messages::ALL.len(), proxy::messages::ALL.len()];
    assert_eq!(counts, [67, 42, 12], "a message was added or removed: update the table and these counts");
}
