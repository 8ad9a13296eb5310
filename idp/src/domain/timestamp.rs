//! Timestamps as JSON answers write them: RFC 3339 in UTC with a `Z`
//! (`2026-12-03T13:39:39.340117Z`), which is what `date-time` means to OpenAPI clients. Stored
//! times are UTC without an offset.

use chrono::{NaiveDateTime, SecondsFormat};
use serde::Serializer;

fn text(t: &NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn rfc3339<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&text(t))
}

pub fn rfc3339_opt<S: Serializer>(t: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&text(t)),
        None => s.serialize_none(),
    }
}

/// As pages show a time: `2026-12-04 19:01 UTC`.
pub fn display(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_with_a_z() {
        #[derive(serde::Serialize)]
        struct T {
            #[serde(serialize_with = "super::rfc3339")]
            at: chrono::NaiveDateTime,
            #[serde(serialize_with = "super::rfc3339_opt")]
            none: Option<chrono::NaiveDateTime>,
        }
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 5_000).unwrap().naive_utc();
        let json = serde_json::to_string(&T { at, none: None }).unwrap();
        assert_eq!(json, r#"{"at":"2027-01-15T08:00:00.000005Z","none":null}"#);
    }
}
