//! Small serde helpers reproducing Go's `encoding/json` conventions (`omitempty`, `null` tolerance).

use serde::{Deserialize, Deserializer};

/// `omitempty` for numbers and bools: skip when equal to the type's zero value.
pub(crate) fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Go decodes `null` into a struct, map or slice as "leave it empty"; do the same.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// For Go string-typed enums tagged `omitempty`: the empty string (Go's zero value) reads as `None`.
pub(crate) fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.is_empty()).map(T::from))
}
