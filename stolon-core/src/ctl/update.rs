//! `stolonctl update`: replace the cluster spec, or patch it with an RFC 7386 JSON merge patch, then apply
//! the spec update rules (the new spec validates, `initMode` is unchanged, no master to standby).

use serde_json::Value;

use super::error::CtlError;
use super::retry::{Decision, MAX_ATTEMPTS, Modified, SpecCheck, modify};
use super::spec::decode_spec_json;
use crate::cluster::{ClusterSpec, decode_json};
use crate::store::ClusterStore;

/// How the user's JSON changes the spec.
#[derive(Debug, Clone, PartialEq)]
pub enum SpecUpdate {
    /// The JSON is the whole new spec (unset fields fall back to defaults).
    Replace(Box<ClusterSpec>),
    /// The JSON is a merge patch applied to the current spec.
    Patch(Value),
}

impl SpecUpdate {
    /// Parses the user's JSON: a whole spec (`patch == false`) or a merge patch, which must be an object.
    pub fn parse(input: &[u8], patch: bool) -> Result<SpecUpdate, CtlError> {
        if !patch {
            return decode_spec_json(input).map(|s| SpecUpdate::Replace(Box::new(s)));
        }
        let value: Value = decode_json("spec patch", input).map_err(|e| CtlError::input("spec patch", e))?;
        if !value.is_object() {
            return Err(CtlError::InvalidInput { what: "spec patch", message: "expected a JSON object".into() });
        }
        Ok(SpecUpdate::Patch(value))
    }

    /// Whether this update may turn failsafe mode on (then every keeper must publish its API).
    pub fn may_enable_failsafe(&self) -> bool {
        match self {
            SpecUpdate::Replace(spec) => spec.failsafe_mode == Some(true),
            SpecUpdate::Patch(patch) => patch.get("failsafeMode") == Some(&Value::Bool(true)),
        }
    }

    /// The spec that results from applying this update to `current`.
    pub fn new_spec(&self, current: &ClusterSpec) -> Result<ClusterSpec, CtlError> {
        match self {
            SpecUpdate::Replace(spec) => Ok(spec.as_ref().clone()),
            SpecUpdate::Patch(patch) => patch_spec(current, patch),
        }
    }
}

/// Applies a merge patch to a spec.
pub fn patch_spec(current: &ClusterSpec, patch: &Value) -> Result<ClusterSpec, CtlError> {
    let mut doc = serde_json::to_value(current)
        .map_err(|e| CtlError::InvalidInput { what: "cluster spec", message: e.to_string() })?;
    merge_patch(&mut doc, patch);
    let bytes = serde_json::to_vec(&doc)
        .map_err(|e| CtlError::InvalidInput { what: "patched spec", message: e.to_string() })?;
    decode_json("patched spec", &bytes).map_err(|e| CtlError::input("patched spec", e))
}

/// RFC 7386 JSON merge patch: an object patch merges into an object target key by key, recursively; a
/// `null` member removes the key; any other patch value (arrays included) replaces the target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(object) = target {
        for (key, value) in members {
            if value.is_null() {
                object.remove(key);
            } else {
                merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Updates the cluster spec with compare-and-swap, retried on concurrent changes. The update is
/// recomputed from fresh data on every attempt (a patch applies to the latest spec). The stored spec may be
/// invalid (the new one must validate), so that an invalid spec can be repaired.
pub async fn update_spec(store: &ClusterStore, update: &SpecUpdate) -> Result<Modified<ClusterSpec>, CtlError> {
    update_spec_with_attempts(store, update, MAX_ATTEMPTS).await
}

/// [`update_spec`] with an explicit number of attempts.
pub async fn update_spec_with_attempts(
    store: &ClusterStore,
    update: &SpecUpdate,
    max_attempts: usize,
) -> Result<Modified<ClusterSpec>, CtlError> {
    // Failsafe mode needs every keeper's API: read their infos when the update may turn it on.
    let failsafe_refusal =
        if update.may_enable_failsafe() { crate::failsafe::missing_api(&store.keeper_infos().await?) } else { None };
    // The stored spec need not be valid: an update is how an invalid spec gets repaired.
    modify(store, max_attempts, SpecCheck::Skipped, |cd| {
        let new = update.new_spec(&cd.cluster.spec)?;
        ClusterSpec::check_update(&cd.cluster.spec, &new).map_err(CtlError::spec_update)?;
        if new.failsafe_mode == Some(true) && cd.cluster.spec.failsafe_mode != Some(true) {
            if let Some(message) = &failsafe_refusal {
                return Err(CtlError::InvalidInput { what: "cluster spec", message: message.clone() });
            }
        }
        cd.cluster.spec = new.clone();
        Ok(Decision::Write(new))
    })
    .await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(target: Value, patch: Value) -> Value {
        let mut t = target;
        merge_patch(&mut t, &patch);
        t
    }

    #[test]
    fn null_removes_a_key() {
        assert_eq!(patched(json!({"a": 1, "b": 2}), json!({"a": null})), json!({"b": 2}));
        assert_eq!(patched(json!({"a": 1}), json!({"zzz": null})), json!({"a": 1}));
    }

    #[test]
    fn objects_merge_recursively() {
        let t = json!({"p": {"x": "1", "y": "2"}, "keep": true});
        assert_eq!(patched(t, json!({"p": {"y": null, "z": "3"}})), json!({"p": {"x": "1", "z": "3"}, "keep": true}));
        assert_eq!(patched(json!({"p": 1}), json!({"p": {"a": {"b": null, "c": 1}}})), json!({"p": {"a": {"c": 1}}}));
    }

    #[test]
    fn arrays_and_scalars_are_replaced() {
        assert_eq!(patched(json!({"l": [1, 2, 3]}), json!({"l": [4]})), json!({"l": [4]}));
        assert_eq!(patched(json!({"l": [{"a": 1}]}), json!({"l": [{"b": 2}]})), json!({"l": [{"b": 2}]}));
        assert_eq!(patched(json!({"a": "x"}), json!({"a": 2})), json!({"a": 2}));
        assert_eq!(patched(json!({"a": 1}), json!([1])), json!([1]));
        assert_eq!(patched(json!([1]), json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn rfc7386_appendix_example() {
        let target = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"], "content": "This will be unchanged"});
        let patch = json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": null},
            "tags": ["example"]});
        assert_eq!(
            patched(target, patch),
            json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
                "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"})
        );
    }

    #[test]
    fn spec_patch_semantics() {
        let current = decode_spec_json(
            br#"{"initMode":"new","pgParameters":{"a":"1","b":"2"},"pgHBA":["host all all 0.0.0.0/0 md5"]}"#,
        )
        .unwrap();
        let p = SpecUpdate::parse(br#"{"pgParameters":{"a":null,"c":"3"},"pgHBA":[]}"#, true).unwrap();
        let new = p.new_spec(&current).unwrap();
        assert_eq!(
            new.pg_parameters().into_iter().collect::<Vec<_>>(),
            [("b".into(), "2".into()), ("c".into(), "3".into())]
        );
        assert_eq!(new.pg_hba, Some(vec![]));
        let all =
            SpecUpdate::parse(br#"{"pgParameters":null,"pgHBA":null}"#, true).unwrap().new_spec(&current).unwrap();
        assert_eq!(all.pg_parameters, None);
        assert_eq!(all.pg_hba, None);
        assert!(SpecUpdate::parse(b"[]", true).is_err());
        let e = SpecUpdate::parse(br#"{"maxStandbys":-1}"#, true).unwrap().new_spec(&current).unwrap_err();
        assert!(e.to_string().contains("maxStandbys"), "{e}");
    }
}
