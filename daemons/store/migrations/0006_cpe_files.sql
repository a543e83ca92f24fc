-- TR-069 file store: the firmware images and configuration files CPEs fetch from
-- /files/<name> (the URL of a Download RPC). This table is the catalogue; the content is
-- on disk under the ACS file root, one file per distinct content, named by its SHA-256.

CREATE TABLE cpe_files (
    -- The name in the URL. No leading dot or dash: never ".", "..", a hidden or temp file.
    name           text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'),
    -- TR-069 FileType: '1 Firmware Upgrade Image', '3 Vendor Configuration File',
    -- 'X <OUI> <vendor type>', ...
    file_type      text NOT NULL
                   CHECK (file_type ~ '^([1-9][0-9]? |X [0-9A-F]{6} ).+$' AND length(file_type) <= 64),
    oui            text NOT NULL DEFAULT '',     -- '' for any
    product_class  text NOT NULL DEFAULT '',     -- '' for any
    version        text NOT NULL DEFAULT '',     -- the SoftwareVersion a firmware image installs
    size           bigint NOT NULL CHECK (size >= 0),
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at     timestamptz NOT NULL DEFAULT now(),  -- of this content (a replace renews it)
    created_by     text NOT NULL DEFAULT ''
);
CREATE INDEX cpe_files_version_idx ON cpe_files (file_type, version);
CREATE INDEX cpe_files_sha256_idx ON cpe_files (sha256);
