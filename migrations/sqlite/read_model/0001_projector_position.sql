-- How far each projector has folded the log. Written in the same transaction as the read
-- models and the outbox rows it covers, so a restart resumes exactly there.
CREATE TABLE projector_positions (
    projector TEXT    NOT NULL PRIMARY KEY,
    position  INTEGER NOT NULL
);
