//! Server-rendered pages from `templates/`. Built in, and overridable file by file from
//! `templates_dir` without rebuilding (as Dex and Keycloak themes allow).

use std::path::PathBuf;
use std::sync::Arc;

use minijinja::{Environment, Value};

use super::error::WebError;

/// The templates compiled into the binary: (name, source).
const BUILTIN: &[(&str, &str)] = &[
    ("base.html", include_str!("../../../templates/base.html")),
    ("login.html", include_str!("../../../templates/login.html")),
    ("home.html", include_str!("../../../templates/home.html")),
    ("sessions.html", include_str!("../../../templates/sessions.html")),
    ("signup.html", include_str!("../../../templates/signup.html")),
    ("consent.html", include_str!("../../../templates/consent.html")),
    ("tokens.html", include_str!("../../../templates/tokens.html")),
    ("login_mfa.html", include_str!("../../../templates/login_mfa.html")),
    ("login_recovery_used.html", include_str!("../../../templates/login_recovery_used.html")),
    ("account_mfa.html", include_str!("../../../templates/account_mfa.html")),
    ("invitation.html", include_str!("../../../templates/invitation.html")),
    ("console.html", include_str!("../../../templates/console.html")),
    ("console_org.html", include_str!("../../../templates/console_org.html")),
    ("console_project.html", include_str!("../../../templates/console_project.html")),
    ("console_audit.html", include_str!("../../../templates/console_audit.html")),
];

pub const STYLESHEET: &str = include_str!("../../../templates/static/idp.css");
pub const PASSWORD_SCRIPT: &str = include_str!("../../../templates/static/password.js");
pub const WEBAUTHN_SCRIPT: &str = include_str!("../../../templates/static/webauthn.js");

#[derive(Clone)]
pub struct Views {
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Views")
    }
}

impl Views {
    pub fn new(override_dir: Option<PathBuf>) -> Self {
        Self::with_branding(override_dir, false)
    }

    /// `has_logo` is a global every page can use (the operator's logo is at `/static/logo`).
    pub fn with_branding(override_dir: Option<PathBuf>, has_logo: bool) -> Self {
        let mut env = Environment::new();
        env.add_global("has_logo", has_logo);
        env.set_loader(move |name: &str| {
            if name.contains("..") || name.starts_with('/') {
                return Ok(None);
            }
            if let Some(dir) = &override_dir {
                let path = dir.join(name);
                if path.is_file() {
                    return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                        minijinja::Error::new(
                            minijinja::ErrorKind::InvalidOperation,
                            format!("{}: {e}", path.display()),
                        )
                    });
                }
            }
            Ok(BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, s)| (*s).to_owned()))
        });
        Self { env: Arc::new(env) }
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<String, WebError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| WebError::Internal(format!("template {name}: {e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_render_and_escape() {
        let v = Views::new(None);
        let html = v
            .render(
                "login.html",
                minijinja::context! { product_name => "<script>x</script>", connectors => Vec::<String>::new() },
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>x"));
    }

    #[test]
    fn override_directory_wins_and_traversal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("login.html"), "custom {{ product_name }}").unwrap();
        let v = Views::new(Some(dir.path().to_owned()));
        assert_eq!(v.render("login.html", minijinja::context! { product_name => "Acme" }).unwrap(), "custom Acme");
        assert!(v.render("../etc/passwd", minijinja::context! {}).is_err());
    }
}
