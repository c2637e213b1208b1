-- Messages that leave Accord, scheduled by the projections that decide them (a transactional
-- outbox): a fold over the ledger like every projected table. An item is pending until a ledger
-- entry records that it was sent, or cancelled by the change that made it moot.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL,
    -- mail: sent to people; event: a moment recorded in the ledger when it comes (a DPA expiring).
    channel TEXT NOT NULL CHECK (channel IN ('mail', 'event')),
    -- What the item is about (e.g. dpa:mailer-2026): a change to it may cancel the item.
    about TEXT NOT NULL,
    -- Items of one group due together go out as one message.
    grp TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    -- Who receives it: for mail, a JSON array of roles whose holders it goes to.
    recipients TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    -- A path on this server the message links to.
    link TEXT,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'cancelled')),
    done_seq BIGINT,
    done_at BIGINT,
    -- For a sent mail: a JSON array of the addresses it went to.
    sent_to TEXT
);
CREATE INDEX outbox_due ON outbox (state, due_at);
CREATE INDEX outbox_about ON outbox (about);

-- Leases on work one instance of several does at a time (an outbox group to send, a webhook to
-- serve), with its failures and next try: operational, not in the ledger.
CREATE TABLE leases (
    key TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    next_at BIGINT NOT NULL,
    owner TEXT,
    until BIGINT,
    last_error TEXT
);
