BEGIN TRANSACTION;
CREATE TABLE deliveries (
	id INTEGER NOT NULL, 
	event_id VARCHAR(40) NOT NULL, 
	handler VARCHAR(200) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	lease_until DATETIME, 
	lease_owner VARCHAR(32), 
	last_error TEXT, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_deliveries_event_handler UNIQUE (event_id, handler), 
	FOREIGN KEY(event_id) REFERENCES events (id)
);
INSERT INTO "deliveries" VALUES(1,'evt_1310fce77c2048268ffb962fbe0e8674','test_migrations.Shop','done',1,'2026-11-21 06:50:35.617548',NULL,NULL,NULL,'2026-11-21 06:50:35.643746');
INSERT INTO "deliveries" VALUES(2,'evt_0018bddb9788492bb1a09d7ce6a981a3','test_migrations.Shop','dead',1,'2026-11-21 06:50:35.630105',NULL,NULL,'Traceback (most recent call last):
  File "/tmp/old/hookhub/delivery.py", line 118, in run
    handler(job.event)
  File "/tmp/old/hookhub/plugins.py", line 50, in __call__
    return self.function(**{name: arguments[name] for name in self.argnames})
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/tmp/make_[redacted].py", line 13, in hookhub_handle_event
    raise RuntimeError("the shop was down")
RuntimeError: the shop was down
','2026-11-21 06:50:35.646372');
INSERT INTO "deliveries" VALUES(3,'evt_02bbe7e7d484408c92053c4ea5b305cd','test_migrations.Shop','done',1,'2026-11-21 06:50:35.634302',NULL,NULL,NULL,'2026-11-21 06:50:35.648575');
CREATE TABLE events (
	id VARCHAR(40) NOT NULL, 
	transaction_pk INTEGER NOT NULL, 
	type VARCHAR(32) NOT NULL, 
	provider VARCHAR(64) NOT NULL, 
	order_id VARCHAR(128) NOT NULL, 
	transaction_id VARCHAR(128) NOT NULL, 
	amount BIGINT NOT NULL, 
	currency VARCHAR(3) NOT NULL, 
	source VARCHAR(16) NOT NULL, 
	occurred_at DATETIME NOT NULL, 
	received_at DATETIME NOT NULL, 
	raw TEXT NOT NULL, 
	expected TEXT, 
	inbound_call_id INTEGER, 
	PRIMARY KEY (id), 
	FOREIGN KEY(transaction_pk) REFERENCES transactions (id)
);
INSERT INTO "events" VALUES('evt_1310fce77c2048268ffb962fbe0e8674',1,'payment.approved','moncash','order-paid','legacy-paid',2500,'HTG','return','2026-11-21 06:50:35.607070','2026-11-21 06:50:35.607070','{"path": "/v1/RetrieveTransactionPayment", "payment": {"cost": 25, "message": "successful", "payer": "50937007294", "reference": "order-paid", "transaction_id": "[redacted]-paid"}, "status": 200, "timestamp": 1795243835614}',NULL,1);
INSERT INTO "events" VALUES('evt_0018bddb9788492bb1a09d7ce6a981a3',2,'payment.approved','moncash','order-fails','legacy-fails',3000,'HTG','callback','2026-11-21 06:50:35.626911','2026-11-21 06:50:35.626911','{"path": "/v1/RetrieveTransactionPayment", "payment": {"cost": 30, "message": "successful", "payer": "50937007294", "reference": "order-fails", "transaction_id": "[redacted]-fails"}, "status": 200, "timestamp": 1795243835628}',NULL,3);
INSERT INTO "events" VALUES('evt_02bbe7e7d484408c92053c4ea5b305cd',3,'payment.pending','moncash','order-waiting','legacy-waiting',4000,'HTG','callback','2026-11-21 06:50:35.631683','2026-11-21 06:50:35.631683','{"path": "/v1/RetrieveTransactionPayment", "payment": {"cost": 40, "message": "processing", "payer": "50937007294", "reference": "order-waiting", "transaction_id": "[redacted]-waiting"}, "status": 200, "timestamp": 1795243835633}',NULL,4);
CREATE TABLE inbound_calls (
	id INTEGER NOT NULL, 
	provider VARCHAR(64) NOT NULL, 
	route VARCHAR(16) NOT NULL, 
	method VARCHAR(16) NOT NULL, 
	path TEXT NOT NULL, 
	query_string TEXT NOT NULL, 
	headers TEXT NOT NULL, 
	body BLOB NOT NULL, 
	peer VARCHAR(64) NOT NULL, 
	received_at DATETIME NOT NULL, 
	outcome VARCHAR(32) NOT NULL, 
	status_code INTEGER, 
	error TEXT, 
	reference VARCHAR(128), 
	event_id VARCHAR(40), 
	PRIMARY KEY (id)
);
INSERT INTO "inbound_calls" VALUES(1,'moncash','return','GET','/return/moncash','transactionId=legacy-paid','{"Host": "localhost", "User-Agent": "Werkzeug/3.1.9"}',X'','127.0.0.1','2026-11-21 06:50:35.607070','event',303,NULL,'legacy-paid','evt_1310fce77c2048268ffb962fbe0e8674');
INSERT INTO "inbound_calls" VALUES(2,'moncash','callback','POST','/hooks/moncash','','{"Content-Length": "32", "Content-Type": "application/json", "Host": "localhost", "User-Agent": "Werkzeug/3.1.9"}',X'7B227472616E73616374696F6E4964223A20226C65676163792D70616964227D','127.0.0.1','2026-11-21 06:50:35.621723','duplicate',200,NULL,'legacy-paid','evt_1310fce77c2048268ffb962fbe0e8674');
INSERT INTO "inbound_calls" VALUES(3,'moncash','callback','POST','/hooks/moncash','','{"Content-Length": "33", "Content-Type": "application/json", "Host": "localhost", "User-Agent": "Werkzeug/3.1.9"}',X'7B227472616E73616374696F6E4964223A20226C65676163792D6661696C73227D','127.0.0.1','2026-11-21 06:50:35.626911','event',200,NULL,'legacy-fails','evt_0018bddb9788492bb1a09d7ce6a981a3');
INSERT INTO "inbound_calls" VALUES(4,'moncash','callback','POST','/hooks/moncash','','{"Content-Length": "35", "Content-Type": "application/json", "Host": "localhost", "User-Agent": "Werkzeug/3.1.9"}',X'7B227472616E73616374696F6E4964223A20226C65676163792D77616974696E67227D','127.0.0.1','2026-11-21 06:50:35.631683','event',200,NULL,'legacy-waiting','evt_02bbe7e7d484408c92053c4ea5b305cd');
INSERT INTO "inbound_calls" VALUES(5,'moncash','callback','POST','/hooks/moncash','','{"Content-Length": "8", "Content-Type": "application/json", "Host": "localhost", "User-Agent": "Werkzeug/3.1.9"}',X'6E6F74206A736F6E','127.0.0.1','2026-11-21 06:50:35.638044','missing_transaction_id',400,'transactionId is required',NULL,NULL);
CREATE TABLE provider_memos (
	provider VARCHAR(64) NOT NULL, 
	"key" VARCHAR(200) NOT NULL, 
	value TEXT NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT uq_provider_memos_provider_key UNIQUE (provider, "key")
);
CREATE TABLE transactions (
	id INTEGER NOT NULL, 
	provider VARCHAR(64) NOT NULL, 
	"key" VARCHAR(128) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	transaction_id VARCHAR(128) NOT NULL, 
	order_id VARCHAR(128) NOT NULL, 
	amount BIGINT NOT NULL, 
	currency VARCHAR(3) NOT NULL, 
	last_event_id VARCHAR(40), 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_transactions_provider_key UNIQUE (provider, "key")
);
INSERT INTO "transactions" VALUES(1,'moncash','legacy-paid','payment','approved','legacy-paid','order-paid',2500,'HTG','evt_1310fce77c2048268ffb962fbe0e8674','2026-11-21 06:50:35.617548','2026-11-21 06:50:35.617548');
INSERT INTO "transactions" VALUES(2,'moncash','legacy-fails','payment','approved','legacy-fails','order-fails',3000,'HTG','evt_0018bddb9788492bb1a09d7ce6a981a3','2026-11-21 06:50:35.630105','2026-11-21 06:50:35.630105');
INSERT INTO "transactions" VALUES(3,'moncash','legacy-waiting','payment','pending','legacy-waiting','order-waiting',4000,'HTG','evt_02bbe7e7d484408c92053c4ea5b305cd','2026-11-21 06:50:35.634302','2026-11-21 06:50:35.634302');
CREATE TABLE verifications (
	id INTEGER NOT NULL, 
	provider VARCHAR(64) NOT NULL, 
	reference VARCHAR(128) NOT NULL, 
	context TEXT NOT NULL, 
	inbound_call_id INTEGER, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	lease_until DATETIME, 
	lease_owner VARCHAR(32), 
	last_error TEXT, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_verifications_provider_reference UNIQUE (provider, reference)
);
INSERT INTO "verifications" VALUES(1,'moncash','legacy-waiting','{}',4,'pending',0,'2026-11-21 07:01:18.834006',NULL,NULL,NULL,'2026-11-21 06:50:35.635497','2026-11-21 06:50:35.635497');
CREATE INDEX ix_inbound_calls_provider_reference ON inbound_calls (provider, reference);
CREATE INDEX ix_inbound_calls_received_at ON inbound_calls (received_at);
CREATE INDEX ix_verifications_due ON verifications (status, next_attempt_at);
CREATE INDEX ix_events_received_at ON events (received_at);
CREATE INDEX ix_events_transaction_pk ON events (transaction_pk);
CREATE INDEX ix_deliveries_due ON deliveries (status, next_attempt_at);
COMMIT;
