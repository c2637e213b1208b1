-- Dropped answers cannot be brought back; nothing to undo.
SELECT 1;
