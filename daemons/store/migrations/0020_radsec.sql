-- Issue 28: RADIUS over TLS (RadSec, RFC 6614). A NAS connecting over TLS is known by its
-- client certificate: its SHA-256 fingerprint ("sha256:<hex>") or a subjectAltName DNS
-- name / subject CN, lowercase. NULL: the NAS does not use RadSec. One NAS per identity.
ALTER TABLE nas_clients ADD COLUMN tls_identity text;
CREATE UNIQUE INDEX nas_clients_tls_identity ON nas_clients (tls_identity)
    WHERE tls_identity IS NOT NULL;
