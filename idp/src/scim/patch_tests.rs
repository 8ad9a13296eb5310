use serde_json::{Value, json};

use super::*;
use crate::scim::schema::canonicalise;

fn run(kind: Kind, start: Value, body: Value) -> Result<Value, ScimError> {
    let ops = parse_request(&body)?;
    let out = apply(kind, start.as_object().unwrap(), &ops)?;
    Ok(Value::Object(canonicalise(kind, &out)?))
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_URN], "Operations": ops})
}

fn user() -> Value {
    json!({"userName": "bob", "active": true, "emails": [{"value": "bob@work.example", "type": "work", "primary": true}],
           "name": {"givenName": "Bob", "familyName": "Smith"}})
}

#[test]
fn entra_id_dialect() {
    // Capitalised ops, "False" as a string, filtered paths, a no-path value keyed by paths.
    let out = run(
        Kind::User,
        user(),
        patch(json!([
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "robert@work.example"},
            {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "bob@home.example"},
            {"op": "Add", "value": {"name.givenName": "Robert", "displayName": "Robert Smith"}},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"},
        ])),
    )
    .unwrap();
    assert_eq!(out["active"], false);
    assert_eq!(out["emails"][0]["value"], "robert@work.example");
    assert_eq!(out["emails"][1], json!({"value": "bob@home.example", "type": "home"}));
    assert_eq!(out["name"], json!({"givenName": "Robert", "familyName": "Smith"}));
    assert_eq!(out["displayName"], "Robert Smith");
    assert_eq!(out[schema::ENTERPRISE_URN]["department"], "Sales");
}

#[test]
fn okta_dialect() {
    let out =
        run(Kind::User, user(), patch(json!([{"op": "replace", "value": {"id": "abc", "active": false}}]))).unwrap();
    assert_eq!(out["active"], false);
    let g = json!({"displayName": "Eng", "members": [{"value": "u1"}, {"value": "u2"}, {"value": "u3"}]});
    let out = run(
        Kind::Group,
        g.clone(),
        patch(json!([
            {"op": "remove", "path": "members[value eq \"u2\"]"},
            {"op": "add", "path": "members", "value": [{"value": "u4", "display": "x"}, {"value": "u1"}]},
        ])),
    )
    .unwrap();
    assert_eq!(out["members"], json!([{"value": "u1"}, {"value": "u3"}, {"value": "u4"}]));
    // Entra ID removes members by value list.
    let out = run(
        Kind::Group,
        g,
        patch(json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u3"}]}])),
    )
    .unwrap();
    assert_eq!(out["members"], json!([{"value": "u2"}]));
}

#[test]
fn replace_with_a_path_replaces_and_remove_removes() {
    let out = run(
        Kind::User,
        user(),
        patch(json!([
            {"op": "replace", "path": "name", "value": {"formatted": "B S"}},
            {"op": "remove", "path": "emails"},
            {"op": "add", "path": "title", "value": "Boss"},
            {"op": "replace", "path": "title", "value": "Chief"},
        ])),
    )
    .unwrap();
    assert_eq!(out, json!({"userName": "bob", "active": true, "name": {"formatted": "B S"}, "title": "Chief"}));
    let out = run(Kind::User, user(), patch(json!([{"op": "remove", "path": "name.familyName"}]))).unwrap();
    assert_eq!(out["name"], json!({"givenName": "Bob"}));
}

fn refused(kind: Kind, body: Value) -> ScimType {
    match run(kind, user(), body) {
        Err(ScimError::BadRequest { scim_type, .. }) => scim_type,
        other => panic!("accepted: {other:?}"),
    }
}

#[test]
fn malformed_requests_are_refused_with_a_scim_type() {
    use ScimType::*;
    assert_eq!(refused(Kind::User, json!({"Operations": []})), InvalidSyntax);
    assert_eq!(refused(Kind::User, json!([1])), InvalidSyntax);
    assert_eq!(refused(Kind::User, patch(json!([]))), InvalidSyntax);
    assert_eq!(refused(Kind::User, patch(json!([{"op": "move", "path": "title", "value": "x"}]))), InvalidSyntax);
    assert_eq!(refused(Kind::User, patch(json!([{"op": "remove"}]))), NoTarget);
    assert_eq!(refused(Kind::User, patch(json!([{"op": "add", "path": "title"}]))), InvalidValue);
    assert_eq!(refused(Kind::User, patch(json!([{"op": "add", "value": "x"}]))), InvalidValue);
    assert_eq!(refused(Kind::User, patch(json!([{"op": "add", "path": "nope", "value": "x"}]))), InvalidPath);
    assert_eq!(refused(Kind::User, patch(json!([{"op": "add", "path": "emails[type eq", "value": "x"}]))), InvalidPath);
    assert_eq!(refused(Kind::User, patch(json!([{"op": "add", "path": "name.nope", "value": "x"}]))), InvalidPath);
    assert_eq!(
        refused(Kind::User, patch(json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]))),
        Mutability
    );
    assert_eq!(
        refused(Kind::User, patch(json!([{"op": "replace", "path": "active", "value": "perhaps"}]))),
        InvalidValue
    );
    assert_eq!(refused(Kind::User, patch(json!([{"op": "remove", "path": "userName"}]))), InvalidValue);
    assert_eq!(
        refused(
            Kind::User,
            patch(json!([{"op": "replace", "path": "emails[type eq \"x\" or type eq \"y\"]", "value": {}}]))
        ),
        NoTarget
    );
    assert_eq!(refused(Kind::User, patch(json!([{"op": "add", "path": 5, "value": "x"}]))), InvalidPath);
}
