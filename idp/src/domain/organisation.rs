use chrono::NaiveDateTime;
use serde::Serialize;

use super::{OrganisationId, ProjectId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Organisation {
    #[schema(value_type = String)]
    pub id: OrganisationId,
    #[schema(value_type = String)]
    pub slug: Slug,
    pub name: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Project {
    #[schema(value_type = String)]
    pub id: ProjectId,
    #[schema(value_type = String)]
    pub organisation_id: OrganisationId,
    #[schema(value_type = String)]
    pub slug: Slug,
    pub name: String,
    pub created_at: NaiveDateTime,
}

/// A short lower-case name used in URLs: `[a-z0-9-]`, 1 to 63 characters, no leading or trailing hyphen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a slug is 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'")]
pub struct InvalidSlug;

impl Slug {
    pub fn parse(s: &str) -> Result<Self, InvalidSlug> {
        let ok = (1..=63).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok { Ok(Self(s.to_owned())) } else { Err(InvalidSlug) }
    }

    /// A slug derived from a display name ("Acme Corp." -> "acme-corp").
    pub fn from_name(name: &str) -> Result<Self, InvalidSlug> {
        let mut out = String::new();
        for c in name.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        let trimmed: String = out.trim_end_matches('-').chars().take(63).collect();
        Self::parse(trimmed.trim_end_matches('-'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(Slug::parse("acme").is_ok());
        assert!(Slug::parse("acme-2").is_ok());
        for bad in ["", "-acme", "acme-", "Acme", "a b", "a/b", &"a".repeat(64)] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Slug::from_name("Acme Corp.").unwrap().as_str(), "acme-corp");
        assert!(Slug::from_name("!!!").is_err());
    }
}
