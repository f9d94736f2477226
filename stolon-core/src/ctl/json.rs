//! JSON output helpers: stolon prints JSON indented with tabs, with fields in declaration order.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Serialises `value` as JSON indented with one tab per level (Go's `json.MarshalIndent(v, "", "\t")`).
pub fn to_tab_indented<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"\t"));
    value.serialize(&mut ser)?;
    // serde_json only ever writes UTF-8.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A JSON object whose entries keep the order in which they were read (serde_json's own map sorts keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderedObject(pub Vec<(String, Value)>);

impl OrderedObject {
    /// Serialises `value` (which must serialise as an object) and reads it back in declaration order.
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<OrderedObject, serde_json::Error> {
        serde_json::from_slice(&serde_json::to_vec(value)?)
    }

    /// Drops the entries whose value is `null`.
    pub fn without_nulls(mut self) -> OrderedObject {
        self.0.retain(|(_, v)| !v.is_null());
        self
    }
}

impl Serialize for OrderedObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(OrderedObject(entries))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample {
        zeta: Option<u8>,
        alpha: Vec<u8>,
        mid: Option<u8>,
    }

    #[test]
    fn tab_indentation_matches_go() {
        let v = serde_json::json!({"a": [], "b": [{"c": true}]});
        assert_eq!(
            to_tab_indented(&v).unwrap(),
            "{\n\t\"a\": [],\n\t\"b\": [\n\t\t{\n\t\t\t\"c\": true\n\t\t}\n\t]\n}"
        );
    }

    #[test]
    fn ordered_object_keeps_declaration_order_and_drops_nulls() {
        let o = OrderedObject::from_serialize(&Sample { zeta: Some(1), alpha: vec![], mid: None }).unwrap();
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"zeta":1,"alpha":[],"mid":null}"#);
        assert_eq!(serde_json::to_string(&o.without_nulls()).unwrap(), r#"{"zeta":1,"alpha":[]}"#);
    }
}
