//! Go string-typed enumerations of the model.
//!
//! Go accepts any string for these types, so decoding never fails on an unknown value: it is kept in
//! an `Unknown` variant, written back verbatim, and rejected by validation where stolon rejects it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this version does not know, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// The JSON string of this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($text => $name::$variant,)+
                    other => $name::Unknown(other.to_string()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name::from(s.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map($name::from)
            }
        }
    };
}

string_enum! {
    /// Cluster lifecycle phase (`cluster.status.phase`).
    ClusterPhase {
        /// From creation until the initial master converges healthy.
        Initializing => "initializing",
        /// Normal operation, forever after initialization.
        Normal => "normal",
    }
}

string_enum! {
    /// Cluster role (`spec.role`).
    ClusterRole {
        /// The cluster owns its primary.
        Master => "master",
        /// The whole cluster replicates from an external primary.
        Standby => "standby",
    }
}

string_enum! {
    /// How a cluster is initialized (`spec.initMode`).
    ClusterInitMode {
        /// initdb a fresh database cluster.
        New => "new",
        /// Point in time recovery from a backup.
        Pitr => "pitr",
        /// Adopt the existing data of one keeper.
        Existing => "existing",
    }
}

string_enum! {
    /// How a keeper must create a DB it does not have locally (`dbs.<uid>.spec.initMode`).
    DbInitMode {
        /// Nothing to initialize.
        None => "none",
        /// Use the existing data directory.
        Existing => "existing",
        /// initdb a fresh database cluster.
        New => "new",
        /// Point in time recovery.
        Pitr => "pitr",
        /// Resync from another DB (pg_rewind or pg_basebackup).
        Resync => "resync",
    }
}

string_enum! {
    /// Role of one DB (`dbs.<uid>.spec.role`).
    DbRole {
        /// Primary.
        Master => "master",
        /// Replica (of an internal DB or of an external primary).
        Standby => "standby",
        /// Keeper-local "not yet known" role; never written in cd by the sentinel.
        Undefined => "undefined",
    }
}

string_enum! {
    /// What a standby DB follows (`followConfig.type`).
    FollowType {
        /// Another DB of this cluster (`followConfig.dbuid`).
        Internal => "internal",
        /// An external primary (standby cluster head).
        External => "external",
    }
}

string_enum! {
    /// pg_hba mode of the superuser/replication rules (`spec.defaultSUReplAccessMode`).
    SuReplAccessMode {
        /// Allow from every host.
        All => "all",
        /// Allow only from the standbys' addresses.
        Strict => "strict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_values_roundtrip() {
        assert_eq!(ClusterInitMode::from("pitr"), ClusterInitMode::Pitr);
        assert_eq!(DbInitMode::from("none"), DbInitMode::None);
        let odd: ClusterRole = serde_json::from_str("\"leader\"").expect("any string decodes");
        assert_eq!(odd, ClusterRole::Unknown("leader".into()));
        assert_eq!(serde_json::to_string(&odd).expect("serialises"), "\"leader\"");
        assert_eq!(SuReplAccessMode::Strict.to_string(), "strict");
    }
}
