-- Issue 21: the authentication history is written at the rate of Access-Requests, so what
-- each row costs PostgreSQL to keep indexed is paid on every login. Measured with binary
-- COPY batches of 7,500 rows (benchmarks/radius_auth.py, history on/off): a btree on
-- (username, id) and one on (at) were most of it.
-- - By user: a hash index. It keeps a 4-byte hash per row, not the name, so it is smaller
--   and cheaper to insert into; a user's rows (a few hundred in a retention) are then
--   sorted by id for the page.
-- - By time: rows arrive in time order (a batch every half second), so a BRIN index
--   (a min/max per range of pages) serves since/until and the retention purge at almost
--   no cost per row.
DROP INDEX radius_auth_log_user_idx;
CREATE INDEX radius_auth_log_user_idx ON radius_auth_log USING hash (username);
DROP INDEX radius_auth_log_at_idx;
CREATE INDEX radius_auth_log_at_idx ON radius_auth_log USING brin (at);
