-- Issue 21: IPv6 subscribers (RFC 3162, 4818, 6911). A subscriber's static IPv6 address,
-- WAN prefix and delegated prefix, and the NAS pools named in its Access-Accept; a
-- session's IPv6 prefixes as its accounting reported them, so a session is found by an
-- address inside them (GiST on inet: >>= uses it).
ALTER TABLE subscribers
    ADD COLUMN framed_ipv6_address inet,
    ADD COLUMN framed_ipv6_prefix cidr,
    ADD COLUMN delegated_ipv6_prefix cidr,
    ADD COLUMN framed_ipv6_pool text,
    ADD COLUMN delegated_ipv6_pool text;

ALTER TABLE radius_sessions
    ADD COLUMN framed_ipv6_address inet,
    ADD COLUMN framed_ipv6_prefix cidr,
    ADD COLUMN delegated_ipv6_prefix cidr;

CREATE INDEX radius_sessions_ipv6_prefix_idx ON radius_sessions
    USING gist (framed_ipv6_prefix inet_ops) WHERE stopped_at IS NULL;
CREATE INDEX radius_sessions_delegated_prefix_idx ON radius_sessions
    USING gist (delegated_ipv6_prefix inet_ops) WHERE stopped_at IS NULL;
