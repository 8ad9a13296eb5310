"""A SAML 2.0 IdP built on pysaml2, for idp's end-to-end test with metadata exchanged both ways.

  PORT=... CERT=... KEY=... python idp.py

GET /metadata           this IdP's metadata (idp reads it: entity id, SSO URL, signing cert)
GET /__test/load-sp?url=U   fetch the SP's metadata from U (idp's /saml/{id}/metadata) and trust it
GET /__test/health      200
GET /sso                HTTP-Redirect binding: verifies the AuthnRequest (its signature with the
                        SP metadata's certificate, its ACS against the metadata) and answers with
                        the auto-posting form of a signed Response for USER (env, or ?user= set
                        by /__test/set-user).
"""
import html
import os
import tempfile
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.server import Server

PORT = int(os.environ["PORT"])
BASE = f"http://127.0.0.1:{PORT}"
STATE = {"user": os.environ.get("USER_EMAIL", "pat@example.test"), "sp": None}


def config(sp_metadata_file=None):
    c = {
        "entityid": f"{BASE}/metadata",
        "service": {
            "idp": {
                "endpoints": {"single_sign_on_service": [(f"{BASE}/sso", BINDING_HTTP_REDIRECT)]},
                "want_authn_requests_signed": True,
                "sign_response": True,
                "sign_assertion": True,
                "signing_algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                "digest_algorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
                "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                "policy": {"default": {"lifetime": {"minutes": 5}, "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}},
            }
        },
        "key_file": os.environ["KEY"],
        "cert_file": os.environ["CERT"],
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "metadata": {"local": [sp_metadata_file]} if sp_metadata_file else {},
    }
    conf = IdPConfig()
    conf.load(c)
    return conf


IDP = {"server": Server(config=config())}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/__test/health":
            return self.send(200, "ok")
        if url.path == "/__test/set-user":
            STATE["user"] = q["user"]
            return self.send(200, "ok")
        if url.path == "/__test/load-sp":
            xml = urllib.request.urlopen(q["url"]).read()
            f = tempfile.NamedTemporaryFile(suffix=".xml", delete=False)
            f.write(xml)
            f.close()
            IDP["server"] = Server(config=config(f.name))
            return self.send(200, "ok")
        if url.path == "/metadata":
            return self.send(200, str(entity_descriptor(config())), "application/samlmetadata+xml")
        if url.path == "/sso":
            return self.sso(q)
        return self.send(404, "not found")

    def sso(self, q):
        server = IDP["server"]
        try:
            req = server.parse_authn_request(
                q["SAMLRequest"], BINDING_HTTP_REDIRECT,
                relay_state=q.get("RelayState"), sigalg=q.get("SigAlg"), signature=q.get("Signature"),
            )
            args = server.response_args(req.message, [BINDING_HTTP_POST])
        except Exception as e:  # a refused request: the test asserts on the status
            return self.send(400, f"refused: {type(e).__name__}: {e}")
        user = STATE["user"]
        resp = server.create_authn_response(
            {"email": [user], "firstName": ["Pat"], "lastName": ["Saml"], "groups": ["admins"]},
            userid=user,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=user),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
            sign_response=True,
            sign_assertion=True,
            **args,
        )
        import base64

        encoded = base64.b64encode(str(resp).encode()).decode()
        form = (
            f'<html><body><form method="post" action="{html.escape(args["destination"])}">'
            f'<input type="hidden" name="SAMLResponse" value="{encoded}"/>'
            f'<input type="hidden" name="RelayState" value="{html.escape(q.get("RelayState", ""))}"/>'
            "</form></body></html>"
        )
        return self.send(200, form, "text/html")


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
