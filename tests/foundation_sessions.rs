//! Sessions through the HTTP layer: cookies, CSRF on every state-changing form, logout.

use harness::{Server, client};
use idp::audit::Actor;
use idp::auth::session::{self, Origin};
use idp::config::Config;
use idp::domain::user::NewUser;
use idp::storage::users::UserRepository;

use super::harness;

/// A user and a live session made through the library, against the server's own database.
fn signed_in(dir: &std::path::Path, port_base: &str) -> (String, String) {
    let vars = vec![
        ("IDP_DATA_DIR".to_owned(), dir.join("idp-data").display().to_string()),
        ("IDP_PUBLIC_URL".to_owned(), port_base.to_owned()),
    ];
    let config = Config::load_with(None, &vars).unwrap();
    let state = idp::app::build_state(config).unwrap();
    let now = state.clock.now_naive();
    let (token, s) = state
        .db
        .write(|c| {
            let u = c.create_user(&NewUser { email: Some("alice@example.com".into()), ..Default::default() }, now)?;
            let _ = Actor::User(u.id);
            session::start(
                c,
                &state.auditor,
                &state.config.session,
                now,
                u.id,
                &["fed".into()],
                None,
                &Origin::default(),
            )
        })
        .unwrap();
    (token.expose().to_owned(), s.id.to_string())
}

fn csrf_from(html: &str) -> String {
    let start = html.find("name=\"csrf_token\" value=\"").unwrap() + 25;
    html[start..].split('"').next().unwrap().to_owned()
}

#[test]
fn forms_need_the_session_bound_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (token, session_id) = signed_in(dir.path(), &server.base);
    let (other_token, other_session) = signed_in(dir.path(), &server.base);
    let cookie = format!("idp_session={token}");
    let c = client();

    let page = c.get(server.url("/sessions")).header("cookie", &cookie).send().unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().unwrap();
    let csrf = csrf_from(&html);
    let other_csrf = csrf_from(
        &c.get(server.url("/sessions"))
            .header("cookie", format!("idp_session={other_token}"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    );

    let form = |t: &str| format!("csrf_token={t}");
    let post = |path: &str, body: String| {
        c.post(server.url(path))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .unwrap()
    };
    assert_eq!(post("/logout", String::new()).status(), 400, "no token");
    assert_eq!(post("/logout", form("forged")).status(), 403, "forged token");
    assert_eq!(post("/logout", form(&other_csrf)).status(), 403, "another session's token");
    // Ending another user's session by id: not found, and it stays alive.
    assert_eq!(post(&format!("/sessions/{other_session}/end"), form(&csrf)).status(), 404);
    let other = c.get(server.url("/sessions")).header("cookie", format!("idp_session={other_token}")).send().unwrap();
    assert_eq!(other.status(), 200);

    let out = post("/logout", form(&csrf));
    assert_eq!(out.status(), 303);
    let set_cookie = out.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.starts_with("idp_session=;")
            && set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    let after = c.get(server.url("/sessions")).header("cookie", &cookie).send().unwrap();
    assert_eq!(after.status(), 303, "the session {session_id} is over");
}
