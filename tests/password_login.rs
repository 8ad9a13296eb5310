//! Password sign-up and sign-in (off by default), end to end through the binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use harness::peers::Browser;
use harness::{Server, TestDb, client};

const GOOD: &str = "gravel orbit lantern quietly";

fn field(html: &str, marker: &str) -> String {
    let start = html.find(marker).unwrap_or_else(|| panic!("{marker} not in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

struct Site {
    _dir: tempfile::TempDir,
    _db: Option<TestDb>,
    server: Server,
}

fn site(postgres: bool, extra: &[(&str, &str)]) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let db = postgres.then(TestDb::postgres);
    let url = db.as_ref().map(|d| d.url());
    let mut env: Vec<(&str, &str)> = vec![("IDP_PASSWORD_LOGIN", "true"), ("IDP_SIGNUP", "open")];
    if let Some(u) = &url {
        env.push(("IDP_DATABASE_URL", u));
    }
    env.extend_from_slice(extra);
    let server = Server::start(dir.path(), &env);
    Site { _dir: dir, _db: db, server }
}

impl Site {
    fn csrf(&self, b: &mut Browser, path: &str) -> String {
        let page = b.open(&self.server.url(path));
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        field(&page.body, "name=\"csrf_token\" value=\"")
    }

    fn post(&self, b: &mut Browser, path: &str, body: &str) -> (u16, Option<String>) {
        b.post_form(&self.server.url(path), &self.server.base, body)
    }

    fn signed_in(&self, b: &mut Browser) -> bool {
        let p = b.open(&self.server.url("/"));
        p.status == 200 && p.body.contains("Signed in")
    }
}

#[test]
fn passwords_are_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(client().get(server.url("/signup")).send().unwrap().status(), 404);
    let r = client()
        .post(server.url("/login/password"))
        .form(&[("email", "a@b.c"), ("password", "x"), ("csrf_token", "x")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let login = client().get(server.url("/login")).send().unwrap().text().unwrap();
    assert!(!login.contains("type=\"password\""), "no password field when off");
}

fn sign_up_and_sign_in(postgres: bool) {
    let s = site(postgres, &[]);
    let mut b = Browser::new();
    let csrf = s.csrf(&mut b, "/signup");
    // Too short and too common: refused with the reasons, nothing created.
    let (status, _) =
        s.post(&mut b, "/signup", &format!("email=alice%40example.com&password=password123&csrf_token={csrf}"));
    assert_eq!(status, 400);
    let (status, loc) =
        s.post(&mut b, "/signup", &format!("email=alice%40example.com&password={}&csrf_token={csrf}", enc(GOOD)));
    assert_eq!((status, loc.as_deref()), (303, Some("/")));
    assert!(s.signed_in(&mut b));
    // The same address again is refused.
    let mut other = Browser::new();
    let csrf2 = s.csrf(&mut other, "/signup");
    let (status, _) =
        s.post(&mut other, "/signup", &format!("email=Alice%40Example.com&password={}&csrf_token={csrf2}", enc(GOOD)));
    assert_eq!(status, 400);

    let mut c = Browser::new();
    let csrf = s.csrf(&mut c, "/login");
    let wrong = s.post(
        &mut c,
        "/login/password",
        &format!("email=alice%40example.com&password=wrong+password+here&csrf_token={csrf}"),
    );
    let unknown = s.post(
        &mut c,
        "/login/password",
        &format!("email=nobody%40example.com&password={}&csrf_token={csrf}", enc(GOOD)),
    );
    assert_eq!(wrong.0, 401);
    assert_eq!(unknown.0, 401, "an unknown account gets the same answer");
    assert!(!s.signed_in(&mut c));
    // NFKC and case of the address do not matter; the password itself is exact.
    let (status, loc) = s.post(
        &mut c,
        "/login/password",
        &format!("email=ALICE%40example.com&password={}&csrf_token={csrf}", enc(GOOD)),
    );
    assert_eq!((status, loc.as_deref()), (303, Some("/")));
    assert!(s.signed_in(&mut c));
}

#[test]
fn sign_up_and_sign_in_on_sqlite() {
    sign_up_and_sign_in(false);
}

#[test]
fn sign_up_and_sign_in_on_postgresql() {
    sign_up_and_sign_in(true);
}

#[test]
fn wrong_and_unknown_accounts_look_the_same() {
    let s = site(false, &[]);
    let mut b = Browser::new();
    let csrf = s.csrf(&mut b, "/signup");
    assert_eq!(
        s.post(&mut b, "/signup", &format!("email=bob%40example.com&password={}&csrf_token={csrf}", enc(GOOD))).0,
        303
    );
    let mut c = Browser::new();
    let csrf = s.csrf(&mut c, "/login");
    let attempt = |c: &mut Browser, email: &str| {
        c.post_form_page(
            &s.server.url("/login/password"),
            &s.server.base,
            &format!("email={}&password=not+the+right+one&csrf_token={csrf}", enc(email)),
        )
    };
    let wrong = attempt(&mut c, "bob@example.com");
    let unknown = attempt(&mut c, "nobody@example.com");
    assert_eq!(wrong.0, 401, "{}", wrong.1);
    assert_eq!(wrong, unknown);
}

#[test]
fn forms_without_a_valid_pre_session_token_are_refused() {
    let s = site(false, &[]);
    let mut b = Browser::new();
    let _ = s.csrf(&mut b, "/login");
    assert_eq!(s.post(&mut b, "/login/password", "email=a%40b.example&password=x&csrf_token=forged").0, 403);
    assert_eq!(
        s.post(&mut b, "/signup", &format!("email=a%40b.example&password={}&csrf_token=forged", enc(GOOD))).0,
        403
    );
    let mut fresh = Browser::new();
    let token = s.csrf(&mut b, "/login");
    assert_eq!(
        s.post(&mut fresh, "/login/password", &format!("email=a%40b.example&password=x&csrf_token={token}")).0,
        403,
        "a token without its cookie"
    );
}

#[test]
fn guessing_one_account_is_rate_limited() {
    let s = site(false, &[("IDP_RATE_LIMIT_PER_ACCOUNT", "3"), ("IDP_RATE_LIMIT_WINDOW", "1h")]);
    let mut b = Browser::new();
    let csrf = s.csrf(&mut b, "/login");
    for _ in 0..3 {
        assert_eq!(
            s.post(&mut b, "/login/password", &format!("email=carol%40example.com&password=guess&csrf_token={csrf}")).0,
            401
        );
    }
    assert_eq!(
        s.post(&mut b, "/login/password", &format!("email=Carol%40example.com&password=guess&csrf_token={csrf}")).0,
        429
    );
    assert_eq!(
        s.post(&mut b, "/login/password", &format!("email=dave%40example.com&password=guess&csrf_token={csrf}")).0,
        401,
        "other accounts are counted apart"
    );
}

#[test]
fn strength_feedback_as_the_user_types() {
    let s = site(false, &[]);
    let ask = |pw: &str| -> serde_json::Value {
        client()
            .post(s.server.url("/signup/strength"))
            .json(&serde_json::json!({"password": pw, "email": "erin@example.com"}))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let weak = ask("password123");
    assert_eq!(weak["acceptable"], false);
    assert!(weak["score"].as_u64().unwrap() <= 1);
    let strong = ask(GOOD);
    assert_eq!(strong["acceptable"], true, "{strong}");
    assert!(strong["score"].as_u64().unwrap() >= 3);
    let page = client().get(s.server.url("/signup")).send().unwrap().text().unwrap();
    assert!(page.contains("src=\"/static/password.js\"") && page.contains("data-strength"));
    assert_eq!(client().get(s.server.url("/static/password.js")).send().unwrap().status(), 200);
}
