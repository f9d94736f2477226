//! Mapping kube errors to [`StoreError`] kinds, naming the verb, resource and namespace of the request.

use crate::StoreError;

/// What a request did, for error messages: `patch pods/keeper-0 in namespace db`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op<'a> {
    /// The Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`).
    pub verb: &'static str,
    /// The resource (`configmaps`, `pods`).
    pub resource: &'static str,
    /// The object name, if the request names one.
    pub name: Option<&'a str>,
    /// The namespace.
    pub namespace: &'a str,
}

impl Op<'_> {
    /// `resource/name` (or just the resource), used as the key of store errors.
    pub fn key(&self) -> String {
        match self.name {
            Some(n) => format!("{}/{n}", self.resource),
            None => self.resource.to_string(),
        }
    }
}

/// Maps a kube error of `op` against the API server `server` to a store error kind.
pub(crate) fn map_err(err: kube::Error, op: Op<'_>, server: &str) -> StoreError {
    use kube::Error as E;
    match err {
        E::Api(status) => map_status(status.code, &status.reason, &status.message, op, server),
        E::HyperError(e) => classify_transport(&e, server),
        E::Service(e) => classify_transport(e.as_ref(), server),
        E::Auth(e) => StoreError::Auth(format!("Kubernetes client authentication: {e}")),
        E::RustlsTls(e) => StoreError::Auth(format!("Kubernetes API TLS setup: {e}")),
        E::SerdeError(e) => StoreError::InvalidData { key: op.key(), reason: format!("undecodable response: {e}") },
        E::ReadEvents(e) => unavailable(server, &format!("reading the response of {}: {e}", op.key())),
        other => StoreError::Backend { key: op.key(), reason: other.to_string() },
    }
}

/// Maps an API status (HTTP code, reason, message) of `op` to a store error kind.
pub(crate) fn map_status(code: u16, reason: &str, message: &str, op: Op<'_>, server: &str) -> StoreError {
    let key = op.key();
    match code {
        409 => StoreError::Conflict { key, reason: message.to_string() },
        404 => StoreError::NotFound { key },
        403 => StoreError::Auth(format!(
            "cannot {} {} in namespace {}: {message} (grant it with an RBAC Role, see docs/backends.md)",
            op.verb, op.resource, op.namespace
        )),
        401 => StoreError::Auth(format!("the Kubernetes API server at {server} refused our credentials: {message}")),
        400 | 413 | 422 => StoreError::InvalidData { key, reason: format!("{reason}: {message}") },
        429 | 500 | 502 | 503 | 504 => unavailable(server, &format!("{code} {reason}: {message}")),
        _ => StoreError::Backend { key, reason: format!("{code} {reason}: {message}") },
    }
}

/// Transport failures: a TLS verification failure is an authentication problem, anything else (refused,
/// reset, closed) means the server cannot be reached.
fn classify_transport(err: &(dyn std::error::Error + 'static), server: &str) -> StoreError {
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    if chain.contains("certificate") || chain.contains("InvalidCertificate") {
        return StoreError::Auth(format!("TLS failure talking to {server}: {chain}"));
    }
    unavailable(server, &chain)
}

/// True for a `410 Gone` answer: the requested resourceVersion is no longer kept.
pub(crate) fn is_gone(err: &StoreError) -> bool {
    matches!(err, StoreError::Backend { reason, .. } if reason.starts_with("410 "))
}

pub(crate) fn unavailable(server: &str, reason: &str) -> StoreError {
    StoreError::Unavailable { endpoints: server.to_string(), reason: reason.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OP: Op<'static> = Op { verb: "patch", resource: "pods", name: Some("keeper-0"), namespace: "db" };

    #[test]
    fn forbidden_names_verb_resource_and_namespace() {
        let e = map_status(403, "Forbidden", "pods \"keeper-0\" is forbidden", OP, "https://k").to_string();
        assert!(e.contains("cannot patch pods in namespace db"), "{e}");
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert!(map_status(409, "Conflict", "m", OP, "s").is_conflict());
        assert!(
            matches!(map_status(404, "NotFound", "m", OP, "s"), StoreError::NotFound { key } if key == "pods/keeper-0")
        );
        assert!(map_status(503, "ServiceUnavailable", "m", OP, "s").is_transient());
        assert!(matches!(map_status(422, "Invalid", "m", OP, "s"), StoreError::InvalidData { .. }));
        assert!(matches!(map_status(401, "Unauthorized", "m", OP, "s"), StoreError::Auth(_)));
        assert!(matches!(map_status(418, "Teapot", "m", OP, "s"), StoreError::Backend { .. }));
        assert!(is_gone(&map_status(410, "Expired", "too old resource version", OP, "s")));
    }
}
