//! The real peers the federated-login tests run against: oidc-provider (npm) as the upstream
//! OIDC provider, and the GitHub fake shaped after GitHub's documentation; dnsmasq for domain
//! verification. All are started on free loopback ports and stopped when dropped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{client, free_port};

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers")
}

pub struct Peer {
    child: Child,
    pub base: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn wait(mut self, what: &str) -> Peer {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{what} exited with {status}");
            }
            if client().get(format!("{}/__test/health", self.base)).send().is_ok_and(|r| r.status() == 200) {
                return self;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what} did not answer on {} within 20 s", self.base);
    }

    pub fn get(&self, path: &str) {
        let r = client().get(format!("{}{path}", self.base)).send().unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
}

/// One OAuth client registered at the upstream.
pub struct UpstreamClient<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub redirect_uris: Vec<String>,
}

/// oidc-provider, scriptable: `set_user`, `tamper` (see tests/peers/oidc/README.md).
pub fn oidc_upstream(clients: &[UpstreamClient<'_>]) -> Peer {
    let dir = peers_dir().join("oidc");
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "tests/peers/oidc is not installed: run ./scripts/test (or npm ci --prefix tests/peers/oidc)"
    );
    let port = free_port();
    let clients: Vec<serde_json::Value> = clients
        .iter()
        .map(|c| serde_json::json!({"client_id": c.client_id, "client_secret": c.client_secret, "redirect_uris": c.redirect_uris}))
        .collect();
    let child = Command::new("node")
        .arg(dir.join("upstream.mjs"))
        .env("PORT", port.to_string())
        .env("CLIENTS", serde_json::Value::Array(clients).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node must be installed");
    Peer { child, base: format!("http://127.0.0.1:{port}") }.wait("oidc-provider upstream")
}

/// A port nothing listens on: an upstream that is down.
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

pub fn github_fake(client_id: &str, client_secret: &str) -> Peer {
    let port = free_port();
    let child = Command::new("python3")
        .arg(peers_dir().join("github/fake_github.py"))
        .args(["--port", &port.to_string(), "--client-id", client_id, "--client-secret", client_secret])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Peer { child, base: format!("http://127.0.0.1:{port}") }.wait("GitHub fake")
}

/// A browser: keeps cookies, follows redirects itself so tests see every hop.
pub struct Browser {
    client: reqwest::blocking::Client,
    pub visited: Vec<String>,
}

pub struct Page {
    pub status: u16,
    pub url: String,
    pub body: String,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        let client = reqwest::blocking::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self { client, visited: Vec::new() }
    }

    pub fn open(&mut self, url: &str) -> Page {
        let mut url = url::Url::parse(url).unwrap();
        for _ in 0..20 {
            self.visited.push(url.to_string());
            let r = self.client.get(url.clone()).send().unwrap();
            let status = r.status().as_u16();
            if (300..400).contains(&status) {
                let loc = r.headers()["location"].to_str().unwrap().to_owned();
                url = url.join(&loc).unwrap();
                continue;
            }
            return Page { status, url: url.to_string(), body: r.text().unwrap() };
        }
        panic!("too many redirects: {:?}", self.visited);
    }

    /// Follows redirects until one leads to a URL containing `needle`, and returns that URL
    /// without visiting it: the moment an attacker holds a callback.
    pub fn open_until(&mut self, url: &str, needle: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        for _ in 0..20 {
            self.visited.push(url.to_string());
            let r = self.client.get(url.clone()).send().unwrap();
            let loc = r
                .headers()
                .get("location")
                .unwrap_or_else(|| panic!("{url} answered {} without a redirect", r.status()));
            url = url.join(loc.to_str().unwrap()).unwrap();
            if url.as_str().contains(needle) {
                return url.to_string();
            }
        }
        panic!("never reached {needle}: {:?}", self.visited);
    }

    /// Posts a form as the page's own (same-origin) form would, without following redirects.
    pub fn post_form(&mut self, url: &str, origin: &str, body: &str) -> (u16, Option<String>) {
        let r = self
            .client
            .post(url)
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .unwrap();
        let loc = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (r.status().as_u16(), loc)
    }

    /// As `post_form`, returning the status and the body.
    pub fn post_form_page(&mut self, url: &str, origin: &str, body: &str) -> (u16, String) {
        let r = self
            .client
            .post(url)
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    /// The first visited URL containing `needle`.
    pub fn visited_containing(&self, needle: &str) -> Option<String> {
        self.visited.iter().find(|u| u.contains(needle)).cloned()
    }
}

/// dnsmasq (Debian package `dnsmasq`) as the DNS server domain verification asks: on a loopback
/// port (UDP and TCP), authoritative for `.test` (unknown names there answer NXDOMAIN), serving
/// exactly the TXT records given. Stopped when dropped; start another on the same port to change
/// the records.
pub struct Dnsmasq {
    child: Child,
    pub port: u16,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1.
pub fn free_dns_port() -> u16 {
    loop {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Dnsmasq {
    pub fn start(port: u16, txt_records: &[(&str, &str)]) -> Dnsmasq {
        let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("dnsmasq is not installed: run ./scripts/test (apt package dnsmasq)");
        let mut cmd = Command::new(bin);
        cmd.args(["--no-daemon", "--conf-file=/dev/null", "--pid-file", "--no-resolv", "--no-hosts"])
            .args(["--listen-address=127.0.0.1", "--bind-interfaces", "--local=/test/"])
            .arg(format!("--port={port}"));
        for (name, value) in txt_records {
            // Passed as one argument, so no quoting: dnsmasq would keep the quotes.
            cmd.arg(format!("--txt-record={name},{value}"));
        }
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let mut peer = Dnsmasq { child, port };
        let started = Instant::now();
        // Ready once it holds the port.
        while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            if let Some(status) = peer.child.try_wait().unwrap() {
                panic!("dnsmasq exited with {status}");
            }
            assert!(started.elapsed() < Duration::from_secs(10), "dnsmasq did not bind 127.0.0.1:{port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        peer
    }
}
