-- The log position through which a full `fulfillment verify` last found every hash chain
-- intact (and the read models equal to a replay). At start the embedded log re-checks the
-- chains only after it: the events up to it were checked in full once and are trusted since.
-- One row, replaced by every successful `verify`; the only table of the log that is updated.
CREATE TABLE verified_checkpoint (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    position    INTEGER NOT NULL,
    verified_at TEXT    NOT NULL
);
