//! `stolonctl spec`: the current cluster spec as JSON; parsing of specs given by the user.

use super::current::usable_cluster_data;
use super::error::CtlError;
use super::json::{OrderedObject, to_tab_indented};
use crate::cluster::{ClusterSpec, decode_json};
use crate::store::ClusterStore;

/// Parses a cluster spec given by the user (argument, file or stdin) and validates it.
pub fn parse_spec(input: &[u8]) -> Result<ClusterSpec, CtlError> {
    let spec = decode_spec_json(input)?;
    spec.validate().map_err(CtlError::InvalidSpec)?;
    Ok(spec)
}

/// Decodes a cluster spec without validating it. The input must be a JSON object.
pub(crate) fn decode_spec_json(input: &[u8]) -> Result<ClusterSpec, CtlError> {
    let value: serde_json::Value =
        decode_json("cluster spec", input).map_err(|e| CtlError::input("cluster spec", e))?;
    if !value.is_object() {
        return Err(CtlError::InvalidInput { what: "cluster spec", message: "expected a JSON object".into() });
    }
    decode_json("cluster spec", input).map_err(|e| CtlError::input("cluster spec", e))
}

/// Renders a spec as stolonctl prints it (tab-indented JSON, fields in stolon's order).
///
/// Without `with_defaults`, only the fields actually set are shown (an empty `pgHBA` list is kept: it
/// differs from an unset one). With it, every field that has a default is shown with its effective value.
pub fn render_spec(spec: &ClusterSpec, with_defaults: bool) -> Result<String, serde_json::Error> {
    let object = if with_defaults {
        OrderedObject::from_serialize(&spec.with_defaults())?
    } else {
        OrderedObject::from_serialize(spec)?.without_nulls()
    };
    to_tab_indented(&object)
}

/// Reads the current spec and renders it (see [`render_spec`]).
pub async fn current_spec(store: &ClusterStore, with_defaults: bool) -> Result<String, CtlError> {
    let current = usable_cluster_data(store).await?;
    render_spec(&current.data.cluster.spec, with_defaults)
        .map_err(|e| CtlError::InvalidInput { what: "cluster spec", message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_fields_without_defaults() {
        let spec = decode_spec_json(br#"{"initMode":"new","sleepInterval":"2s","pgHBA":[]}"#).unwrap();
        assert_eq!(
            render_spec(&spec, false).unwrap(),
            "{\n\t\"sleepInterval\": \"2s\",\n\t\"initMode\": \"new\",\n\t\"pgHBA\": []\n}"
        );
    }

    #[test]
    fn every_default_with_defaults() {
        let spec = decode_spec_json(br#"{"initMode":"new"}"#).unwrap();
        let out = render_spec(&spec, true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["sleepInterval"], "5s");
        assert_eq!(v["maxStandbys"], 20);
        assert_eq!(v["role"], "master");
        assert_eq!(v["additionalWalSenders"], 5);
        assert!(out.starts_with("{\n\t\"sleepInterval\": \"5s\",\n\t\"requestTimeout\": \"10s\","), "{out}");
    }

    #[test]
    fn bad_specs_are_rejected_with_the_reason() {
        assert!(matches!(parse_spec(b"[1]"), Err(CtlError::InvalidInput { .. })));
        assert!(matches!(parse_spec(b"{"), Err(CtlError::InvalidInput { .. })));
        let e = parse_spec(br#"{"initMode":"new","maxStandbys":"x"}"#).unwrap_err().to_string();
        assert!(e.contains("maxStandbys"), "{e}");
        let e = parse_spec(br#"{"initMode":"new","proxyCheckInterval":"20s"}"#).unwrap_err().to_string();
        assert!(e.contains("proxyCheckInterval") && e.contains("rule 2"), "{e}");
        assert!(matches!(parse_spec(br#"{}"#), Err(CtlError::InvalidSpec(_))));
    }
}
