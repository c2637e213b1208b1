DROP TABLE leases;
DROP TABLE outbox;
