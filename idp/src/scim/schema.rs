//! The schemas idp publishes (RFC 7643 §4 User, §4.2 Group) as data: the same definitions
//! produce `/Schemas`, validate and canonicalise what clients send (names to their canonical
//! case, `"True"`/`"False"` strings to booleans, read-only attributes dropped), so a resource
//! is stored as canonical JSON and every published read-write attribute round-trips.

use serde_json::{Map, Value, json};

use super::error::{ScimError, ScimType};
use super::filter::get_ci;

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Accepted and kept as sent (Entra ID sends it by default); not published, not validated.
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

pub fn is_core_urn(urn: &str) -> bool {
    urn.eq_ignore_ascii_case(USER_URN) || urn.eq_ignore_ascii_case(GROUP_URN)
}

/// The two resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
    pub fn urn(self) -> &'static str {
        match self {
            Kind::User => USER_URN,
            Kind::Group => GROUP_URN,
        }
    }
    pub fn attrs(self) -> &'static [Attr] {
        match self {
            Kind::User => USER_ATTRS,
            Kind::Group => GROUP_ATTRS,
        }
    }
    /// The attribute that must be present: userName, displayName.
    pub fn required(self) -> &'static str {
        match self {
            Kind::User => "userName",
            Kind::Group => "displayName",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    Reference,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadWrite,
    ReadOnly,
    Immutable,
}

#[derive(Debug)]
pub struct Attr {
    pub name: &'static str,
    pub ty: Type,
    pub multi: bool,
    pub required: bool,
    pub mutability: Mutability,
    pub unique: bool,
    pub subs: &'static [Attr],
    pub reference_types: &'static [&'static str],
    pub canonical: &'static [&'static str],
    pub description: &'static str,
}

const fn string(name: &'static str, description: &'static str) -> Attr {
    Attr {
        name,
        ty: Type::String,
        multi: false,
        required: false,
        mutability: Mutability::ReadWrite,
        unique: false,
        subs: &[],
        reference_types: &[],
        canonical: &[],
        description,
    }
}

const fn boolean(name: &'static str, description: &'static str) -> Attr {
    Attr { ty: Type::Boolean, ..string(name, description) }
}

const fn complex(name: &'static str, multi: bool, subs: &'static [Attr], description: &'static str) -> Attr {
    Attr { ty: Type::Complex, multi, subs, ..string(name, description) }
}

const fn typed(name: &'static str, canonical: &'static [&'static str]) -> Attr {
    Attr { canonical, ..string(name, "A label indicating the attribute's function.") }
}

const NAME_SUBS: &[Attr] = &[
    string("formatted", "The full name, formatted for display."),
    string("familyName", "The family name."),
    string("givenName", "The given name."),
    string("middleName", "The middle name(s)."),
    string("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'."),
    string("honorificSuffix", "The honorific suffix(es), e.g. 'III'."),
];

const EMAIL_SUBS: &[Attr] = &[
    string("value", "The e-mail address."),
    string("display", "A human-readable name."),
    typed("type", &["work", "home", "other"]),
    boolean("primary", "Whether this is the primary e-mail address."),
];

const PHONE_SUBS: &[Attr] = &[
    string("value", "The phone number."),
    string("display", "A human-readable name."),
    typed("type", &["work", "home", "mobile", "fax", "pager", "other"]),
    boolean("primary", "Whether this is the primary phone number."),
];

const USER_GROUP_SUBS: &[Attr] = &[
    Attr { mutability: Mutability::ReadOnly, ..string("value", "The group's id.") },
    Attr {
        ty: Type::Reference,
        mutability: Mutability::ReadOnly,
        reference_types: &["Group"],
        ..string("$ref", "The group's URI.")
    },
    Attr { mutability: Mutability::ReadOnly, ..string("display", "The group's displayName.") },
    Attr { mutability: Mutability::ReadOnly, canonical: &["direct"], ..string("type", "direct") },
];

pub const USER_ATTRS: &[Attr] = &[
    Attr { required: true, unique: true, ..string("userName", "The unique identifier the user signs in with.") },
    complex("name", false, NAME_SUBS, "The components of the user's name."),
    string("displayName", "The name shown to people."),
    string("nickName", "The casual name."),
    Attr {
        ty: Type::Reference,
        reference_types: &["external"],
        ..string("profileUrl", "A URI of the user's online profile.")
    },
    string("title", "The user's title, e.g. 'Vice President'."),
    string("userType", "The relationship to the organisation, e.g. 'Employee'."),
    string("preferredLanguage", "The preferred written or spoken language."),
    string("locale", "The default location, for localising."),
    string("timezone", "The time zone, in the 'Olson' format."),
    boolean("active", "Whether the user may sign in; false cuts them off at once."),
    complex("emails", true, EMAIL_SUBS, "E-mail addresses."),
    complex("phoneNumbers", true, PHONE_SUBS, "Phone numbers."),
    Attr {
        mutability: Mutability::ReadOnly,
        ..complex("groups", true, USER_GROUP_SUBS, "The groups the user belongs to (set through Groups).")
    },
];

const MEMBER_SUBS: &[Attr] = &[
    Attr { mutability: Mutability::Immutable, ..string("value", "The member's id.") },
    Attr {
        ty: Type::Reference,
        mutability: Mutability::Immutable,
        reference_types: &["User", "Group"],
        ..string("$ref", "The member's URI.")
    },
    Attr { mutability: Mutability::Immutable, canonical: &["User", "Group"], ..string("type", "User or Group.") },
];

pub const GROUP_ATTRS: &[Attr] = &[
    Attr { required: true, ..string("displayName", "The group's name, matched by group-to-role mappings.") },
    complex("members", true, MEMBER_SUBS, "The group's members."),
];

pub fn find<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

fn invalid_value(detail: String) -> ScimError {
    ScimError::bad(ScimType::InvalidValue, detail)
}

/// One value of `attr`, canonicalised; `None` for null or empty.
fn coerce_single(attr: &Attr, v: &Value) -> Result<Option<Value>, ScimError> {
    Ok(match (attr.ty, v) {
        (_, Value::Null) => None,
        (Type::String | Type::Reference, Value::String(s)) => Some(Value::String(s.clone())),
        (Type::Boolean, Value::Bool(b)) => Some(Value::Bool(*b)),
        // Entra ID sends "True" and "False".
        (Type::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(Value::Bool(true)),
        (Type::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(Value::Bool(false)),
        (Type::Complex, Value::Object(o)) => {
            let mut out = Map::new();
            for (k, sub_v) in o {
                let Some(sub) = find(attr.subs, k) else { continue };
                if let Some(c) = coerce_single(sub, sub_v)? {
                    out.insert(sub.name.to_owned(), c);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (ty, other) => {
            let want = match ty {
                Type::String | Type::Reference => "a string",
                Type::Boolean => "a boolean",
                Type::Complex => "an object",
            };
            return Err(invalid_value(format!("{} must be {want}, not {other}", attr.name)));
        }
    })
}

/// A value of `attr` (an array for a multi-valued one), canonicalised; `None` when empty.
pub fn coerce(attr: &Attr, v: &Value) -> Result<Option<Value>, ScimError> {
    if !attr.multi {
        if v.is_array() {
            return Err(invalid_value(format!("{} takes one value", attr.name)));
        }
        return coerce_single(attr, v);
    }
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        if let Some(c) = coerce_single(attr, item)? {
            out.push(c);
        }
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// Canonical attributes from a client's resource: known attributes only, in their canonical
/// names and types; id, meta, schemas and read-only attributes dropped (RFC 7644 §3.3);
/// the enterprise extension kept as sent. The required attribute must be a non-empty string.
pub fn canonicalise(kind: Kind, input: &Map<String, Value>) -> Result<Map<String, Value>, ScimError> {
    let mut out = Map::new();
    merge_into(kind, input, &mut out, true)?;
    match out.get(kind.required()) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(out),
        _ => Err(invalid_value(format!("{} is required", kind.required()))),
    }
}

fn merge_into(
    kind: Kind,
    input: &Map<String, Value>,
    out: &mut Map<String, Value>,
    top: bool,
) -> Result<(), ScimError> {
    for (k, v) in input {
        if ["schemas", "id", "meta"].iter().any(|n| k.eq_ignore_ascii_case(n)) {
            continue;
        }
        if k.eq_ignore_ascii_case("externalId") {
            match v {
                Value::Null => {}
                Value::String(s) => {
                    out.insert("externalId".into(), Value::String(s.clone()));
                }
                other => return Err(invalid_value(format!("externalId must be a string, not {other}"))),
            }
            continue;
        }
        if k.len() > 4 && k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
            if top && k.eq_ignore_ascii_case(kind.urn()) {
                let inner = v.as_object().ok_or_else(|| invalid_value(format!("{k} must be an object")))?;
                merge_into(kind, inner, out, false)?;
            } else if kind == Kind::User && k.eq_ignore_ascii_case(ENTERPRISE_URN) {
                match v {
                    Value::Object(o) if !o.is_empty() => {
                        let kept: Map<String, Value> =
                            o.iter().filter(|(_, x)| !x.is_null()).map(|(a, b)| (a.clone(), b.clone())).collect();
                        if !kept.is_empty() {
                            out.insert(ENTERPRISE_URN.into(), Value::Object(kept));
                        }
                    }
                    Value::Object(_) | Value::Null => {}
                    _ => return Err(invalid_value(format!("{k} must be an object"))),
                }
            }
            continue;
        }
        let Some(attr) = find(kind.attrs(), k) else { continue };
        if attr.mutability == Mutability::ReadOnly {
            continue;
        }
        if let Some(c) = coerce(attr, v)? {
            out.insert(attr.name.to_owned(), c);
        }
    }
    Ok(())
}

/// The value at `name` in `obj` (canonical attribute names), for the idp side of a resource.
pub fn text<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    get_ci(obj, name).and_then(Value::as_str)
}

// ------------------------------------------------------------------ discovery documents

fn attr_json(a: &Attr) -> Value {
    let ty = match a.ty {
        Type::String => "string",
        Type::Boolean => "boolean",
        Type::Reference => "reference",
        Type::Complex => "complex",
    };
    let mutability = match a.mutability {
        Mutability::ReadWrite => "readWrite",
        Mutability::ReadOnly => "readOnly",
        Mutability::Immutable => "immutable",
    };
    let mut v = json!({
        "name": a.name,
        "type": ty,
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "caseExact": false,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": if a.unique { "server" } else { "none" },
    });
    if let Some(map) = v.as_object_mut() {
        if a.ty == Type::Complex {
            map.insert("subAttributes".into(), Value::Array(a.subs.iter().map(attr_json).collect()));
        }
        if a.ty == Type::Reference {
            map.insert("referenceTypes".into(), json!(a.reference_types));
        }
        if !a.canonical.is_empty() {
            map.insert("canonicalValues".into(), json!(a.canonical));
        }
    }
    v
}

pub fn schema_document(kind: Kind, base: &str) -> Value {
    let (name, description) = match kind {
        Kind::User => ("User", "User Account"),
        Kind::Group => ("Group", "Group"),
    };
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": kind.urn(),
        "name": name,
        "description": description,
        "attributes": kind.attrs().iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{}", kind.urn())},
    })
}

pub fn resource_type_document(kind: Kind, base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": kind.as_str(),
        "name": kind.as_str(),
        "endpoint": format!("/{}", kind.endpoint()),
        "description": kind.as_str(),
        "schema": kind.urn(),
        "schemaExtensions": [],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", kind.as_str())},
    })
}

/// The most resources one page holds.
pub const MAX_RESULTS: usize = 200;

pub fn service_provider_config(base: &str, max_body: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": max_body},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Organisation API token",
            "description": "An idp organisation token (idp_oat_...) with the scim_provision scope, as a Bearer token.",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

/// A ListResponse of discovery documents.
pub fn list_of(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_URN],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn names_are_canonicalised_and_strings_become_booleans() {
        let c = canonicalise(
            Kind::User,
            &obj(json!({"schemas": [USER_URN], "id": "x", "USERNAME": "bob", "Active": "False",
                        "emails": {"Value": "b@example.com", "primary": "true", "bogus": 1},
                        "groups": [{"value": "g"}], "unknown": 5, "externalId": "e"})),
        )
        .unwrap();
        assert_eq!(
            Value::Object(c),
            json!({"userName": "bob", "active": false, "emails": [{"value": "b@example.com", "primary": true}],
                   "externalId": "e"})
        );
    }

    #[test]
    fn wrong_types_and_missing_required_are_invalid_value() {
        for bad in [
            json!({"userName": 5}),
            json!({"userName": "a", "active": "maybe"}),
            json!({"userName": "a", "name": "Bob"}),
            json!({"userName": "a", "displayName": ["x"]}),
            json!({"userName": " "}),
            json!({"displayName": "no user name"}),
            json!({"userName": "a", "externalId": 7}),
        ] {
            match canonicalise(Kind::User, &obj(bad.clone())) {
                Err(ScimError::BadRequest { scim_type: ScimType::InvalidValue, .. }) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
