#!/usr/bin/env python3
"""A fake GitHub for idp's end-to-end tests: the OAuth app web flow and the REST endpoints a
login broker reads, shaped after docs.github.com (see README.md for the page each follows).

    python3 fake_github.py --port 9500 [--users users.json] [--client-id ID --client-secret S]
                           [--callback-url URL ...]

Binds 127.0.0.1 only. Python 3 standard library only.

Web flow (github.com):   GET  /login/oauth/authorize   POST /login/oauth/access_token
REST (api.github.com at the root, and GitHub Enterprise Server style under /api/v3):
                         GET  /user  /user/emails  /user/orgs  /user/teams
Test control:            GET  /__test/set-user?user=NAME   /__test/health
"""
import argparse
import base64
import hashlib
import html
import json
import secrets
import string
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

DOCS = "https://docs.github.com"
TROUBLE_TOKEN = DOCS + "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"
TROUBLE_AUTHZ = DOCS + "/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/"
DOC_URLS = {
    "/user": DOCS + "/rest/users/users#get-the-authenticated-user",
    "/user/emails": DOCS + "/rest/users/emails#list-email-addresses-for-the-authenticated-user",
    "/user/orgs": DOCS + "/rest/orgs/orgs#list-organizations-for-the-authenticated-user",
    "/user/teams": DOCS + "/rest/teams/teams#list-teams-for-the-authenticated-user",
}
UA_REQUIRED = (
    "Request forbidden by administrative rules. Please make sure your request has a User-Agent "
    "header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). "
    "Check https://developer.github.com for other possible causes.\n"
)
CODE_TTL = 600  # "codes expire after 10 minutes"
DENY = "__deny__"

DEFAULT_USERS = {
    "octocat": {
        "id": 583231,
        "name": "The Octocat",
        "company": "@acme",
        "email": "octocat@github.test",
        "emails": [
            {"email": "octocat@github.test", "primary": True, "verified": True, "visibility": "public"},
            {"email": "octocat@users.noreply.github.test", "primary": False, "verified": True, "visibility": None},
        ],
        "orgs": ["acme"],
        "teams": [{"slug": "admins", "organization": {"login": "acme"}}],
    },
    "outsider": {
        "id": 700001,
        "name": "Out Sider",
        "email": None,  # no public e-mail: /user shows null, /user/emails has it
        "emails": [{"email": "outsider@elsewhere.test", "primary": True, "verified": True, "visibility": "private"}],
        "orgs": [],
        "teams": [],
    },
    "unverified": {
        "id": 700002,
        "name": "Un Verified",
        "email": None,
        "emails": [{"email": "unverified@github.test", "primary": True, "verified": False, "visibility": "private"}],
        "orgs": ["acme"],
        "teams": [],
    },
    # What github.com really does for an account with no verified primary e-mail: the token
    # request fails with unverified_user_email.
    "noverified": {
        "id": 700003,
        "name": "No Verified",
        "email": None,
        "emails": [{"email": "noverified@github.test", "primary": True, "verified": False, "visibility": "private"}],
        "orgs": [],
        "teams": [],
        "token_error": "unverified_user_email",
    },
}

KNOWN_ORGS = {"acme": {"id": 9919001, "description": "Acme Corporation (test organisation)"}}


def node_id(kind, num):
    # Legacy global node id format, e.g. MDQ6VXNlcjU4MzIzMQ== for "04:User583231".
    return base64.b64encode(f"0{len(kind)}:{kind}{num}".encode()).decode()


def stable_id(text, base):
    return base + zlib.crc32(text.encode()) % 1_000_000


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def rand_token(prefix, n=36):
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


class State:
    def __init__(self, users, client_id, client_secret, callbacks):
        self.users = users
        self.client_id = client_id
        self.client_secret = client_secret
        self.callbacks = callbacks
        self.sticky = "octocat" if "octocat" in users else next(iter(users), "octocat")
        self.codes = {}
        self.tokens = {}
        self.lock = threading.Lock()


def load_users(path):
    if not path:
        return json.loads(json.dumps(DEFAULT_USERS))
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        sys.exit("users file must be a JSON object: {login: {id, name, email, emails, orgs, teams}}")
    for login, u in data.items():
        u.setdefault("id", stable_id(login, 800000))
        u.setdefault("name", login)
        u.setdefault("email", None)
        u.setdefault("emails", [])
        u.setdefault("orgs", [])
        u.setdefault("teams", [])
    return data


def redirect_uri_allowed(redirect_uri, callbacks):
    """GitHub: host and port must match the callback URL exactly; the path must be the
    callback URL's path or a subdirectory of it. No registered callback: anything goes."""
    if not callbacks:
        return True
    r = urlsplit(redirect_uri)
    for cb in callbacks:
        c = urlsplit(cb)
        if (r.scheme, r.hostname, r.port) != (c.scheme, c.hostname, c.port):
            continue
        cpath = c.path.rstrip("/")
        if r.path == c.path or r.path.rstrip("/") == cpath or r.path.startswith(cpath + "/"):
            return True
    return False


def add_query(url, params):
    sep = "&" if urlsplit(url).query else "?"
    return url + sep + urlencode(params)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GitHub.com"
    sys_version = ""
    state: State = None

    # ------------------------------------------------------------ plumbing
    def log_message(self, fmt, *args):
        pass

    def log_request(self, code="-", size="-"):
        sys.stdout.write(f"{self.log_date_time_string()} {self.command} {self.path} {code}\n")
        sys.stdout.flush()

    def send(self, status, body, content_type, headers=None):
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Request-Id", secrets.token_hex(8).upper())
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, status, obj, headers=None):
        h = {"X-GitHub-Media-Type": "github.v3; format=json"}
        h.update(headers or {})
        self.send(status, json.dumps(obj, indent=2), "application/json; charset=utf-8", h)

    def api_error(self, status, message, doc=DOCS + "/rest", headers=None):
        self.send_json(status, {"message": message, "documentation_url": doc, "status": str(status)}, headers)

    def html_page(self, status, title, text):
        body = (f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
                f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>")
        self.send(status, body, "text/html; charset=utf-8")

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/json":
            try:
                obj = json.loads(raw or b"{}")
                return {k: str(v) for k, v in obj.items()} if isinstance(obj, dict) else {}
            except ValueError:
                return {}
        return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}

    # ------------------------------------------------------------ dispatch
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        p = url.path
        if p == "/__test/health":
            return self.send(200, "ok", "text/plain; charset=utf-8")
        if p == "/__test/set-user":
            self.state.sticky = q.get("user") or "octocat"
            return self.send(200, f"user: {self.state.sticky}\n", "text/plain; charset=utf-8")
        if p == "/login/oauth/authorize":
            return self.authorize(q)
        if p.startswith("/api/v3/") or p == "/api/v3":
            return self.rest(p[len("/api/v3"):] or "/", q, ghes=True)
        if p == "/login/oauth/access_token":
            return self.html_page(404, "Not Found", "This endpoint takes POST.")
        return self.rest(p, q, ghes=False)

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path == "/login/oauth/access_token":
            return self.access_token(self.read_body())
        self.read_body()
        if url.path.startswith("/api/v3/") or not url.path.startswith("/login/"):
            return self.api_error(404, "Not Found")
        return self.html_page(404, "Not Found", "No such page.")

    # ------------------------------------------------------------ web flow
    def authorize(self, q):
        st = self.state
        if q.get("client_id") != st.client_id:
            # github.com shows its 404 page for an unknown client_id.
            return self.html_page(404, "Page not found · GitHub", "This is not the web page you are looking for.")
        redirect_uri = q.get("redirect_uri") or (st.callbacks[0] if st.callbacks else None)
        if not redirect_uri:
            return self.html_page(400, "Bad request", "redirect_uri is required (no callback URL registered).")
        state = q.get("state")
        if not redirect_uri_allowed(redirect_uri, st.callbacks):
            params = {
                "error": "redirect_uri_mismatch",
                "error_description": "The redirect_uri MUST match the registered callback URL for this application.",
                "error_uri": TROUBLE_AUTHZ + "#redirect-uri-mismatch",
            }
            if state is not None:
                params["state"] = state
            return self.send(302, "", "text/html; charset=utf-8", {"Location": add_query(st.callbacks[0], params)})
        user = q.get("login") or st.sticky
        if user == DENY:
            params = {
                "error": "access_denied",
                "error_description": "The user has denied your application access.",
                "error_uri": TROUBLE_AUTHZ + "#access-denied",
            }
            if state is not None:
                params["state"] = state
            return self.send(302, "", "text/html; charset=utf-8", {"Location": add_query(redirect_uri, params)})
        if user not in st.users:
            return self.html_page(404, "Unknown test user", f"fake GitHub has no user {user!r}")
        challenge = q.get("code_challenge")
        method = q.get("code_challenge_method") or ("S256" if challenge else None)
        code = secrets.token_hex(10)  # github.com codes are 20 hex characters
        scopes = [s for s in q.get("scope", "").replace(",", " ").split() if s]
        with st.lock:
            st.codes[code] = {
                "user": user, "client_id": st.client_id, "redirect_uri": redirect_uri,
                "scopes": scopes, "exp": time.time() + CODE_TTL,
                "challenge": challenge, "method": method,
            }
        params = {"code": code}
        if state is not None:
            params["state"] = state
        self.send(302, "", "text/html; charset=utf-8", {"Location": add_query(redirect_uri, params)})

    def access_token(self, body):
        st = self.state
        want_json = "application/json" in (self.headers.get("Accept") or "")

        def reply(obj):
            if want_json:
                return self.send(200, json.dumps(obj), "application/json; charset=utf-8")
            return self.send(200, urlencode(obj), "application/x-www-form-urlencoded; charset=utf-8")

        def error(err, desc, anchor):
            return reply({"error": err, "error_description": desc, "error_uri": TROUBLE_TOKEN + "#" + anchor})

        client_id, client_secret = body.get("client_id"), body.get("client_secret")
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("basic ") and not client_secret:
            try:
                cid, _, csec = base64.b64decode(auth[6:].strip()).decode().partition(":")
                client_id, client_secret = client_id or cid, csec
            except ValueError:
                pass
        if (client_id != st.client_id or not client_secret
                or not secrets.compare_digest(client_secret, st.client_secret)):
            return error("incorrect_client_credentials",
                         "The client_id and/or client_secret passed are incorrect.",
                         "incorrect-client-credentials")
        code = body.get("code") or ""
        with st.lock:
            grant = st.codes.pop(code, None)  # single use, even when the request below fails
        if not grant or grant["exp"] < time.time() or grant["client_id"] != client_id:
            return error("bad_verification_code", "The code passed is incorrect or expired.", "bad-verification-code")
        redirect_uri = body.get("redirect_uri")
        if redirect_uri and redirect_uri != grant["redirect_uri"]:
            return error("redirect_uri_mismatch",
                         "The redirect_uri MUST match the registered callback URL for this application.",
                         "redirect-uri-mismatch2")
        if grant["challenge"]:
            verifier = body.get("code_verifier") or ""
            if grant["method"] == "S256":
                computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            else:
                computed = verifier
            if not verifier or not secrets.compare_digest(computed, grant["challenge"]):
                return error("bad_verification_code", "The code passed is incorrect or expired.", "bad-verification-code")
        user = st.users[grant["user"]]
        if user.get("token_error") == "unverified_user_email":
            return error("unverified_user_email", "The user must have a verified primary email.", "unverified-user-email")
        token = rand_token("gho_")
        with st.lock:
            st.tokens[token] = {"user": grant["user"], "scopes": grant["scopes"]}
        reply({"access_token": token, "token_type": "bearer", "scope": ",".join(grant["scopes"])})

    # ------------------------------------------------------------ REST
    def bases(self, ghes):
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        web = f"http://{host}"
        return (web + "/api/v3" if ghes else web), web

    def org_obj(self, org, api):
        login = org if isinstance(org, str) else org["login"]
        known = KNOWN_ORGS.get(login, {})
        oid = (org.get("id") if isinstance(org, dict) else None) or known.get("id") or stable_id(login, 9000000)
        desc = (org.get("description") if isinstance(org, dict) else None) or known.get("description")
        u = f"{api}/orgs/{login}"
        return {
            "login": login, "id": oid, "node_id": node_id("Organization", oid), "url": u,
            "repos_url": u + "/repos", "events_url": u + "/events", "hooks_url": u + "/hooks",
            "issues_url": u + "/issues", "members_url": u + "/members{/member}",
            "public_members_url": u + "/public_members{/member}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{oid}?v=4", "description": desc,
        }

    def user_obj(self, login, u, api, web):
        uid = u["id"]
        base = f"{api}/users/{login}"
        created = 1296000000 + uid % 100000000
        return {
            "login": login, "id": uid, "user_view_type": "private", "node_id": node_id("User", uid),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4", "gravatar_id": "",
            "url": base, "html_url": f"{web}/{login}",
            "followers_url": base + "/followers", "following_url": base + "/following{/other_user}",
            "gists_url": base + "/gists{/gist_id}", "starred_url": base + "/starred{/owner}{/repo}",
            "subscriptions_url": base + "/subscriptions", "organizations_url": base + "/orgs",
            "repos_url": base + "/repos", "events_url": base + "/events{/privacy}",
            "received_events_url": base + "/received_events", "type": "User", "site_admin": False,
            "name": u.get("name"), "company": u.get("company"), "blog": "", "location": None,
            "email": u.get("email"), "hireable": None, "bio": None, "twitter_username": None,
            "notification_email": u.get("email"), "public_repos": 2, "public_gists": 1,
            "followers": 20, "following": 0, "created_at": iso(created), "updated_at": iso(created + 86400 * 365),
            "private_gists": 0, "total_private_repos": 0, "owned_private_repos": 0, "disk_usage": 10000,
            "collaborators": 0, "two_factor_authentication": True,
            "plan": {"name": "free", "space": 976562499, "private_repos": 10000, "collaborators": 0},
        }

    def team_obj(self, t, api, web):
        org = self.org_obj(t["organization"], api)
        slug = t["slug"]
        tid = t.get("id") or stable_id(org["login"] + "/" + slug, 3000000)
        name = t.get("name") or slug.replace("-", " ").title()
        full_org = dict(org)
        full_org.update({
            "name": org["login"].title(), "company": None, "blog": "", "location": None, "email": None,
            "is_verified": False, "has_organization_projects": True, "has_repository_projects": True,
            "public_repos": 2, "public_gists": 0, "followers": 0, "following": 0,
            "html_url": f"{web}/{org['login']}", "created_at": "2015-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z", "archived_at": None, "type": "Organization",
        })
        return {
            "id": tid, "node_id": node_id("Team", tid), "url": f"{api}/teams/{tid}",
            "html_url": f"{web}/orgs/{org['login']}/teams/{slug}", "name": name, "slug": slug,
            "description": t.get("description", f"The {name} team."), "privacy": t.get("privacy", "closed"),
            "notification_setting": "notifications_enabled", "permission": t.get("permission", "pull"),
            "members_url": f"{api}/teams/{tid}/members{{/member}}", "repositories_url": f"{api}/teams/{tid}/repos",
            "parent": None, "members_count": 3, "repos_count": 1,
            "created_at": "2017-07-14T16:53:42Z", "updated_at": "2017-08-17T12:37:15Z", "organization": full_org,
        }

    def paginate(self, items, q, api, path):
        try:
            per_page = max(1, min(100, int(q.get("per_page", 30))))
            page = max(1, int(q.get("page", 1)))
        except ValueError:
            per_page, page = 30, 1
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        links = []

        def link(n, rel):
            links.append(f'<{api}{path}?{urlencode({"per_page": per_page, "page": n})}>; rel="{rel}"')
        if page > 1:
            link(page - 1, "prev")
            link(1, "first")
        if page < last:
            link(page + 1, "next")
            link(last, "last")
        return chunk, ({"Link": ", ".join(links)} if links else {})

    def rest(self, path, q, ghes):
        st = self.state
        path = path.rstrip("/") or "/"
        if not self.headers.get("User-Agent"):
            return self.send(403, UA_REQUIRED, "text/plain; charset=utf-8")
        if path not in DOC_URLS:
            return self.api_error(404, "Not Found")
        doc = DOC_URLS[path]
        auth = (self.headers.get("Authorization") or "").strip()
        scheme, _, token = auth.partition(" ")
        if not auth:
            return self.api_error(401, "Requires authentication", doc)
        if scheme.lower() not in ("bearer", "token") or token.strip() not in st.tokens:
            return self.api_error(401, "Bad credentials")
        tok = st.tokens[token.strip()]
        login, scopes = tok["user"], tok["scopes"]
        u = st.users[login]
        api, web = self.bases(ghes)
        now = int(time.time())
        headers = {
            "X-OAuth-Scopes": ", ".join(sorted(scopes)),
            "X-GitHub-Api-Version-Selected": "2022-11-28",
            "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": str(now + 3600), "X-RateLimit-Used": "1", "X-RateLimit-Resource": "core",
            "Cache-Control": "private, max-age=60, s-maxage=60", "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
        }
        s = set(scopes)
        if path == "/user":
            headers["X-Accepted-OAuth-Scopes"] = ""
            return self.send_json(200, self.user_obj(login, u, api, web), headers)
        if path == "/user/emails":
            headers["X-Accepted-OAuth-Scopes"] = "user, user:email"
            if not s & {"user", "user:email"}:
                return self.api_error(404, "Not Found", doc, headers)
            items = [{"email": e["email"], "primary": bool(e.get("primary")), "verified": bool(e.get("verified")),
                      "visibility": e.get("visibility")} for e in u["emails"]]
        elif path == "/user/orgs":
            headers["X-Accepted-OAuth-Scopes"] = "admin:org, read:org, repo, user, write:org"
            if not s & {"user", "read:org", "write:org", "admin:org", "repo"}:
                return self.api_error(403, "You need at least read:org scope or user scope to list your organizations.",
                                      doc, headers)
            items = [self.org_obj(o, api) for o in u["orgs"]]
        else:  # /user/teams
            headers["X-Accepted-OAuth-Scopes"] = "admin:org, read:org, repo, user, write:org"
            if not s & {"user", "repo", "read:org", "write:org", "admin:org"}:
                return self.api_error(403, "You need at least read:org scope, repo scope or user scope to list your teams.",
                                      doc, headers)
            items = [self.team_obj(t, api, web) for t in u["teams"]]
        chunk, link = self.paginate(items, q, api, path)
        headers.update(link)
        self.send_json(200, chunk, headers)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--users", help="JSON file {login: {id, name, email, emails, orgs, teams}} replacing the built-in users")
    ap.add_argument("--client-id", default="fake-github-client-id")
    ap.add_argument("--client-secret", default="fake-github-client-secret")
    ap.add_argument("--callback-url", action="append", default=[],
                    help="registered Authorization callback URL (repeatable); unset: any redirect_uri is accepted")
    args = ap.parse_args(argv)
    Handler.state = State(load_users(args.users), args.client_id, args.client_secret, args.callback_url)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"READY fake-github http://127.0.0.1:{server.server_address[1]} client_id={args.client_id} "
          f"users={','.join(Handler.state.users)}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _on_sigterm(*_):
    raise KeyboardInterrupt


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, _on_sigterm)
    main()
