-- Issue 21: the authentication history is written at the rate of Access-Requests, so what
-- each row costs PostgreSQL to keep indexed is paid on every login. Its two btrees, on
-- (username, id) and on (at), were most of that: binary COPY of 3,000-row batches into a
-- table of 900,000 rows took 7.4 µs a row with them, 3.0 with the primary key alone.
-- One BRIN index replaces them (3.3 µs a row, and 0.25 to summarize): per range of 16
-- pages (about 800 records) a bloom filter of the user names and the range of times.
-- Rows arrive in time order, so a time window selects few ranges; a user's records are
-- found by the ranges whose filter holds the name (1% false positives). A lookup reads
-- the whole index (about an eighth of the table's size) and the ranges it selects: a few
-- milliseconds at a million records, instead of a btree's one.
-- A range is summarized when the writer asks (daemons/radius/authlog_writer.py, every few
-- seconds, or VACUUM); a range not yet summarized is read whole by every lookup, so
-- nothing is missed. Bloom BRIN operator classes need PostgreSQL 14 or newer.
DROP INDEX radius_auth_log_user_idx;
DROP INDEX radius_auth_log_at_idx;
CREATE INDEX radius_auth_log_brin ON radius_auth_log
    USING brin (username text_bloom_ops (n_distinct_per_range = -0.25), at)
    WITH (pages_per_range = 16);
