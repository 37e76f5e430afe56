-- Every event of a call not yet folded into its CDR, kept by id: a
-- replayed or duplicated event is stored once.
CREATE TABLE IF NOT EXISTS call_events (
    event_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    event BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS call_events_by_call ON call_events (call_id, sequence);

-- One row per call.
CREATE TABLE IF NOT EXISTS cdr (
    call_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    from_uri TEXT NOT NULL,
    to_uri TEXT NOT NULL,
    request_uri TEXT NOT NULL,
    source TEXT NOT NULL,
    transport TEXT NOT NULL,
    start_us BIGINT NOT NULL,
    answer_us BIGINT,
    end_us BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    billable_s BIGINT NOT NULL,
    disposition TEXT NOT NULL,
    hangup_cause TEXT NOT NULL,
    hangup_side TEXT NOT NULL,
    sip_code BIGINT NOT NULL,
    caller_codec TEXT NOT NULL,
    callee_codec TEXT NOT NULL,
    caller_packets_received BIGINT NOT NULL,
    caller_packets_lost BIGINT NOT NULL,
    caller_jitter_us BIGINT NOT NULL,
    callee_packets_received BIGINT NOT NULL,
    callee_packets_lost BIGINT NOT NULL,
    callee_jitter_us BIGINT NOT NULL,
    route TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cdr_by_end ON cdr (end_us);
