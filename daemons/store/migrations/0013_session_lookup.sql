-- `netd session show|clear|disconnect ACCT-SESSION-ID` and GET /sessions/{id} find a session
-- by the NAS's Acct-Session-Id as well as by netd's id (the unique id, the primary key).
CREATE INDEX radius_sessions_acct_session_idx ON radius_sessions (acct_session_id);
