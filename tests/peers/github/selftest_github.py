#!/usr/bin/env python3
"""Self-check of fake_github.py: starts it on a free loopback port, runs the OAuth web flow end
to end with urllib and asserts the response shapes and the error cases. Exit 0 when all hold."""
import base64
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
CID, CSECRET = "selftest-id", "selftest-secret"
CALLBACK = "http://127.0.0.1:9/callback/github"
UA = {"User-Agent": "idp-selftest"}

passed = failed = 0


def check(name, cond, extra=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {extra}")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


opener = urllib.request.build_opener(NoRedirect)


def req(method, url, headers=None, data=None):
    r = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with opener.open(r, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
BASE = f"http://127.0.0.1:{port}"
proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_github.py"), "--port", str(port),
                         "--client-id", CID, "--client-secret", CSECRET, "--callback-url", CALLBACK],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
try:
    for _ in range(100):
        try:
            if req("GET", BASE + "/__test/health")[2] == "ok":
                break
        except OSError:
            time.sleep(0.1)
    else:
        raise SystemExit("fake_github did not start")

    def authorize(**params):
        p = {"client_id": CID, "redirect_uri": CALLBACK, "scope": "read:user user:email read:org", "state": "st-1"}
        p.update(params)
        p = {k: v for k, v in p.items() if v is not None}
        return req("GET", BASE + "/login/oauth/authorize?" + urlencode(p))

    def code_for(**params):
        st, h, _ = authorize(**params)
        assert st == 302, st
        return parse_qs(urlsplit(h["Location"]).query)["code"][0]

    def token(code, accept_json=True, **extra):
        body = {"client_id": CID, "client_secret": CSECRET, "code": code, "redirect_uri": CALLBACK}
        body.update(extra)
        headers = {"Accept": "application/json"} if accept_json else {}
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        st, h, b = req("POST", BASE + "/login/oauth/access_token", headers, urlencode(body).encode())
        return st, h, (json.loads(b) if accept_json else {k: v[0] for k, v in parse_qs(b).items()})

    def api(path, tok, prefix="", scheme="Bearer", headers=None):
        h = dict(UA)
        if tok is not None:
            h["Authorization"] = f"{scheme} {tok}"
        h.update(headers or {})
        st, rh, b = req("GET", BASE + prefix + path, h)
        return st, rh, (json.loads(b) if rh.get("Content-Type", "").startswith("application/json") else b)

    # ---- authorize
    st, h, _ = authorize()
    loc = urlsplit(h.get("Location", ""))
    q = parse_qs(loc.query)
    check("authorize -> 302 to redirect_uri with code and state",
          st == 302 and h["Location"].startswith(CALLBACK + "?") and q["state"] == ["st-1"] and len(q["code"][0]) == 20)
    st, h, body = authorize(client_id="nope")
    check("unknown client_id -> HTML 404", st == 404 and h["Content-Type"].startswith("text/html"))
    st, h, _ = authorize(redirect_uri="http://127.0.0.1:10/elsewhere")
    q = parse_qs(urlsplit(h.get("Location", "")).query)
    check("foreign redirect_uri -> redirect_uri_mismatch to the registered callback",
          st == 302 and h["Location"].startswith(CALLBACK) and q["error"] == ["redirect_uri_mismatch"])
    st, h, _ = authorize(login="__deny__")
    q = parse_qs(urlsplit(h.get("Location", "")).query)
    check("__deny__ -> access_denied", st == 302 and q["error"] == ["access_denied"]
          and q["error_description"] == ["The user has denied your application access."]
          and q["error_uri"][0].startswith("https://docs.github.com/") and q["state"] == ["st-1"] and "code" not in q)
    check("deny Location encoding", "error_description=The+user+has+denied+your+application+access." in h["Location"])

    # ---- token exchange
    code = code_for()
    st, h, tok = token(code)
    check("token JSON", st == 200 and h["Content-Type"].startswith("application/json")
          and tok["access_token"].startswith("gho_") and tok["token_type"] == "bearer"
          and tok["scope"] == "read:user,user:email,read:org", tok)
    access = tok["access_token"]
    st, h, again = token(code)
    check("code is single use -> bad_verification_code (HTTP 200)", st == 200 and again == {
        "error": "bad_verification_code", "error_description": "The code passed is incorrect or expired.",
        "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"})
    st, h, form = token(code_for(), accept_json=False)
    check("token form-encoded without Accept", st == 200 and h["Content-Type"].startswith("application/x-www-form-urlencoded")
          and form["access_token"].startswith("gho_") and form["token_type"] == "bearer")
    st, h, bad = token(code_for(), client_secret="wrong")
    check("incorrect_client_credentials", bad.get("error") == "incorrect_client_credentials" and st == 200)
    st, h, bad = token(code_for(), redirect_uri=CALLBACK + "/other")
    check("redirect_uri_mismatch at token", bad.get("error") == "redirect_uri_mismatch")
    body = json.dumps({"client_id": CID, "client_secret": CSECRET, "code": code_for()}).encode()
    st, h, b = req("POST", BASE + "/login/oauth/access_token",
                   {"Accept": "application/json", "Content-Type": "application/json"}, body)
    check("JSON request body accepted", st == 200 and json.loads(b)["access_token"].startswith("gho_"))
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    c = code_for(code_challenge=challenge, code_challenge_method="S256")
    check("PKCE wrong verifier refused", token(c, code_verifier="x" * 50)[2].get("error") == "bad_verification_code")
    c = code_for(code_challenge=challenge, code_challenge_method="S256")
    check("PKCE right verifier accepted", "access_token" in token(c, code_verifier=verifier)[2])
    check("no verified primary e-mail -> unverified_user_email",
          token(code_for(login="noverified"))[2].get("error") == "unverified_user_email")

    # ---- REST, at the root and under /api/v3
    for prefix in ("", "/api/v3"):
        st, h, user = api("/user", access, prefix)
        check(f"{prefix}/user 200 + headers", st == 200 and h["Content-Type"] == "application/json; charset=utf-8"
              and h["X-GitHub-Media-Type"].startswith("github.v3")
              and h["X-OAuth-Scopes"] == "read:org, read:user, user:email", h)
        check(f"{prefix}/user fields", user["login"] == "octocat" and user["id"] == 583231
              and user["node_id"] == "MDQ6VXNlcjU4MzIzMQ==" and user["type"] == "User" and user["site_admin"] is False
              and user["email"] == "octocat@github.test" and user["url"] == f"{BASE}{prefix}/users/octocat"
              and all(k in user for k in ("avatar_url", "name", "html_url", "created_at")))
        st, h, emails = api("/user/emails", access, prefix, scheme="token")
        check(f"{prefix}/user/emails ('token' scheme)", st == 200 and emails[0] == {
            "email": "octocat@github.test", "primary": True, "verified": True, "visibility": "public"})
        st, h, orgs = api("/user/orgs", access, prefix)
        check(f"{prefix}/user/orgs", st == 200 and [o["login"] for o in orgs] == ["acme"]
              and set(orgs[0]) >= {"login", "id", "node_id", "url", "description"})
        st, h, teams = api("/user/teams", access, prefix)
        check(f"{prefix}/user/teams", st == 200 and teams[0]["slug"] == "admins"
              and teams[0]["organization"]["login"] == "acme"
              and set(teams[0]) >= {"id", "node_id", "name", "slug", "description", "privacy", "permission", "organization"}
              and "id" in teams[0]["organization"])

    st, h, b = api("/user", None)
    check("no token -> 401 Requires authentication", st == 401 and b["message"] == "Requires authentication"
          and b["documentation_url"].startswith("https://docs.github.com/rest"))
    st, h, b = api("/user", "gho_bogus")
    check("bad token -> 401 Bad credentials", st == 401 and b["message"] == "Bad credentials")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # urllib always adds a User-Agent
    conn.request("GET", "/user", headers={"Authorization": "Bearer " + access})
    r = conn.getresponse()
    b = r.read().decode()
    conn.close()
    check("no User-Agent -> 403", r.status == 403 and "User-Agent" in b)

    # scopes are enforced
    st, h, t2 = token(code_for(scope="read:user"))
    check("narrow scope in token", t2["scope"] == "read:user")
    check("/user/emails without user:email -> 404", api("/user/emails", t2["access_token"])[0] == 404)
    check("/user/orgs without read:org -> 403", api("/user/orgs", t2["access_token"])[0] == 403)

    # ---- sticky set-user and the other built-in users
    req("GET", BASE + "/__test/set-user?user=unverified")
    st, h, t3 = token(code_for())
    st, h, u3 = api("/user", t3["access_token"])
    st, h, e3 = api("/user/emails", t3["access_token"])
    check("set-user unverified: email null, primary unverified", u3["login"] == "unverified" and u3["email"] is None
          and e3 == [{"email": "unverified@github.test", "primary": True, "verified": False, "visibility": "private"}])
    st, h, t4 = token(code_for(login="outsider"))
    check("login param beats set-user; outsider has no orgs",
          api("/user", t4["access_token"])[2]["login"] == "outsider" and api("/user/orgs", t4["access_token"])[2] == [])
    req("GET", BASE + "/__test/set-user?user=octocat")

    # pagination
    st, h, page = api("/user/emails?per_page=1", access)
    check("pagination: per_page=1 + Link next", len(page) == 1 and 'rel="next"' in h.get("Link", ""))
finally:
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
check("one log line per request", " GET /__test/health 200" in out, out[-500:])
check("stops on SIGTERM", proc.returncode is not None)
print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
