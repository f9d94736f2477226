//! Cluster specs of the scenarios: stolon's test spec with short intervals, and the variants.

use serde_json::{Value, json};

/// The spec every scenario starts from: short intervals so faults are detected in seconds.
pub fn base_spec() -> Value {
    json!({
        "initMode": "new",
        "sleepInterval": "1s",
        "failInterval": "4s",
        "convergenceTimeout": "30s",
        "requestTimeout": "3s",
        "pgParameters": {
            "log_destination": "stderr",
            "logging_collector": "false",
            "shared_buffers": "16MB",
        }
    })
}

/// stolon's HA test spec: [`base_spec`] with a bounded standby lag.
pub fn ha_spec() -> Value {
    merged(base_spec(), &json!({ "maxStandbyLag": 50 * 1024 }))
}

/// The variants of stolon's HA scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Asynchronous replication.
    Async,
    /// `synchronousReplication` with one required synchronous standby.
    SyncRepl,
    /// `synchronousReplication` with `minSynchronousStandbys` 0.
    SyncRepl0,
    /// Asynchronous, `usePgrewind`.
    Pgrewind,
    /// `SyncRepl` and `usePgrewind`.
    SyncReplPgrewind,
    /// `SyncRepl0` and `usePgrewind`.
    SyncRepl0Pgrewind,
}

impl Variant {
    /// The suffix of stolon's scenario names (`TestFailover` + `SyncRepl`).
    pub fn suffix(self) -> &'static str {
        match self {
            Variant::Async => "",
            Variant::SyncRepl => "SyncRepl",
            Variant::SyncRepl0 => "SyncRepl0",
            Variant::Pgrewind => "Pgrewind",
            Variant::SyncReplPgrewind => "SyncReplPgrewind",
            Variant::SyncRepl0Pgrewind => "SyncRepl0Pgrewind",
        }
    }

    /// Synchronous replication is on.
    pub fn sync(self) -> bool {
        !matches!(self, Variant::Async | Variant::Pgrewind)
    }

    /// Synchronous replication with `minSynchronousStandbys` 0.
    pub fn sync0(self) -> bool {
        matches!(self, Variant::SyncRepl0 | Variant::SyncRepl0Pgrewind)
    }

    /// `usePgrewind`.
    pub fn pgrewind(self) -> bool {
        matches!(self, Variant::Pgrewind | Variant::SyncReplPgrewind | Variant::SyncRepl0Pgrewind)
    }

    /// The spec keys of this variant, to merge into a base spec.
    pub fn patch(self) -> Value {
        let mut p = json!({});
        if self.sync() {
            p["synchronousReplication"] = json!(true);
            p["minSynchronousStandbys"] = json!(if self.sync0() { 0 } else { 1 });
            p["maxSynchronousStandbys"] = json!(1);
        }
        if self.pgrewind() {
            p["usePgrewind"] = json!(true);
        }
        p
    }

    /// [`ha_spec`] with this variant.
    pub fn ha_spec(self) -> Value {
        merged(ha_spec(), &self.patch())
    }
}

/// `base` with `patch` applied as a JSON merge patch (RFC 7386: `null` removes a key).
pub fn merged(mut base: Value, patch: &Value) -> Value {
    merge(&mut base, patch);
    base
}

fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}
