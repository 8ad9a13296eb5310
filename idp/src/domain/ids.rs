//! Newtype identifiers. Every external identifier is a random UUIDv4: never sequential, never guessable.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The error for a string that is not a UUID in canonical hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid identifier")]
pub struct InvalidId;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random identifier.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                parse_canonical(s).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Only the lower-case hyphenated form is accepted, so one id has exactly one spelling
/// (no braces, no URN prefix, no upper case) and lookups never miss on a variant.
fn parse_canonical(s: &str) -> Result<Uuid, InvalidId> {
    if s.len() != 36 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(InvalidId);
    }
    Uuid::try_parse(s).map_err(|_| InvalidId)
}

id_type!(
    /// A person or service known to idp.
    UserId
);
id_type!(
    /// A link between a user and an upstream account.
    ExternalIdentityId
);
id_type!(OrganisationId);
id_type!(ProjectId);
id_type!(
    /// A role an organisation defined for itself.
    CustomRoleId
);
id_type!(
    /// A server-side session's public handle (never the cookie value).
    SessionId
);
id_type!(
    /// A value sealed by the master key.
    SecretId
);
id_type!(AuditEventId);
id_type!(
    /// An API token's public handle (never its secret).
    ApiTokenId
);
id_type!(
    /// A TOTP authenticator of a user (its seed is a sealed secret).
    TotpCredentialId
);
id_type!(
    /// One generated set of recovery codes.
    RecoveryCodeSetId
);
id_type!(
    /// A WebAuthn credential (passkey or security key) of a user.
    WebauthnCredentialId
);
id_type!(
    /// A WebAuthn registration or authentication in progress.
    WebauthnCeremonyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_uuids_parse() {
        let id = UserId::new();
        assert_eq!(id.to_string().parse::<UserId>(), Ok(id));
        for bad in [
            "",
            "1",
            "not-a-uuid",
            "../etc/passwd",
            "00000000000000000000000000000000",
            "{6f1c2a52-9a43-4a59-8f6b-9c5d3f0f3a11}",
            "6F1C2A52-9A43-4A59-8F6B-9C5D3F0F3A11",
            "urn:uuid:6f1c2a52-9a43-4a59-8f6b-9c5d3f0f3a11",
        ] {
            assert_eq!(bad.parse::<UserId>(), Err(InvalidId), "{bad}");
        }
    }

    #[test]
    fn new_ids_are_random_v4() {
        let a = ProjectId::new();
        let b = ProjectId::new();
        assert_ne!(a, b);
        assert_eq!(a.as_uuid().get_version_num(), 4);
    }
}
