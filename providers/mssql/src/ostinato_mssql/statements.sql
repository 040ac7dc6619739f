-- Every statement of the SQL Server provider, schema [ostinato]

-- provider: session setup
SET XACT_ABORT OFF; SET LOCK_TIMEOUT 30000; SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

-- provider: schema creation lock (parameter: resource)
SET NOCOUNT ON; DECLARE @r INT; EXEC @r = sp_getapplock @Resource = ?, @LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = 120000; SELECT @r AS result;

-- provider: create schema (parameter: schema)
DECLARE @s SYSNAME = ?; IF SCHEMA_ID(@s) IS NULL EXEC(N'CREATE SCHEMA ' + QUOTENAME(@s));

-- provider: server version
SELECT CAST(SERVERPROPERTY('ProductVersion') AS NVARCHAR(128));

-- provider: delete a task hub's rows (parameter: hub)
DELETE FROM [ostinato].[ostinato_history] WHERE task_hub = ?;
DELETE FROM [ostinato].[ostinato_inbox] WHERE task_hub = ?;
DELETE FROM [ostinato].[ostinato_orchestration_queue] WHERE task_hub = ?;
DELETE FROM [ostinato].[ostinato_activities] WHERE task_hub = ?;
DELETE FROM [ostinato].[ostinato_instances] WHERE task_hub = ?;

-- schema (toolkit migrations)
CREATE TABLE [ostinato].[ostinato_schema] (
    version INT NOT NULL,
    description NVARCHAR(MAX) NOT NULL,
    applied_at BIGINT NOT NULL,
    PRIMARY KEY (version)
);
CREATE TABLE [ostinato].[ostinato_instances] (
    task_hub NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    instance_id NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    name NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    execution_id NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    runtime_status NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    created_at BIGINT NOT NULL,
    last_updated_at BIGINT NOT NULL,
    input NVARCHAR(MAX),
    output NVARCHAR(MAX),
    custom_status NVARCHAR(MAX),
    failure_details NVARCHAR(MAX),
    parent_instance_id NVARCHAR(200) COLLATE Latin1_General_100_BIN2,
    history_size INT NOT NULL,
    PRIMARY KEY (task_hub, instance_id)
);
CREATE TABLE [ostinato].[ostinato_history] (
    id BIGINT IDENTITY(1,1) PRIMARY KEY,
    task_hub NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    instance_id NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    event NVARCHAR(MAX) NOT NULL
);
CREATE TABLE [ostinato].[ostinato_inbox] (
    id BIGINT IDENTITY(1,1) PRIMARY KEY,
    task_hub NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    instance_id NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    visible_at BIGINT NOT NULL,
    body NVARCHAR(MAX) NOT NULL
);
CREATE TABLE [ostinato].[ostinato_orchestration_queue] (
    task_hub NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    instance_id NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    visible_at BIGINT,
    locked_by NVARCHAR(200) COLLATE Latin1_General_100_BIN2,
    lock_token NVARCHAR(200) COLLATE Latin1_General_100_BIN2,
    dequeue_count INT NOT NULL,
    PRIMARY KEY (task_hub, instance_id)
);
CREATE TABLE [ostinato].[ostinato_activities] (
    id BIGINT IDENTITY(1,1) PRIMARY KEY,
    task_hub NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    instance_id NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    execution_id NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    task_id INT NOT NULL,
    name NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    input NVARCHAR(MAX),
    visible_at BIGINT NOT NULL,
    locked_by NVARCHAR(200) COLLATE Latin1_General_100_BIN2,
    lock_token NVARCHAR(200) COLLATE Latin1_General_100_BIN2,
    dequeue_count INT NOT NULL
);
CREATE INDEX ostinato_history_instance ON [ostinato].[ostinato_history] (task_hub, instance_id, id);
CREATE INDEX ostinato_inbox_instance ON [ostinato].[ostinato_inbox] (task_hub, instance_id, visible_at);
CREATE INDEX ostinato_orchestration_queue_visible ON [ostinato].[ostinato_orchestration_queue] (task_hub, visible_at);
CREATE INDEX ostinato_activities_visible ON [ostinato].[ostinato_activities] (task_hub, visible_at);
CREATE INDEX ostinato_activities_instance ON [ostinato].[ostinato_activities] (task_hub, instance_id);
CREATE TABLE [ostinato].[ostinato_leases] (
    task_hub NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    name NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (task_hub, name)
);
CREATE TABLE [ostinato].[ostinato_dead_letters] (
    id BIGINT IDENTITY(1,1) PRIMARY KEY,
    task_hub NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    instance_id NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    kind NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    body NVARCHAR(MAX) NOT NULL,
    reason NVARCHAR(MAX) NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ostinato_dead_letters_instance ON [ostinato].[ostinato_dead_letters] (task_hub, instance_id);

-- toolkit: activity_abandon
UPDATE [ostinato].[ostinato_activities] SET visible_at = ?, locked_by = NULL, lock_token = NULL, dequeue_count = dequeue_count - 1 WHERE task_hub = ? AND id = ? AND lock_token = ? AND visible_at > ?;

-- toolkit: activity_claim
SELECT id, instance_id, execution_id, task_id, name, input, dequeue_count FROM [ostinato].[ostinato_activities] WITH (UPDLOCK, READPAST, ROWLOCK) WHERE task_hub = ? AND visible_at <= ? ORDER BY visible_at, id OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY;

-- toolkit: activity_claimed_in (2 rows or ids)
SELECT id, instance_id, execution_id, task_id FROM [ostinato].[ostinato_activities] WHERE task_hub = ? AND lock_token = ? AND instance_id IN (?, ?);

-- toolkit: activity_delete
DELETE FROM [ostinato].[ostinato_activities] WHERE task_hub = ? AND instance_id = ?;

-- toolkit: activity_delete_ids (2 rows or ids)
DELETE FROM [ostinato].[ostinato_activities] WHERE id IN (?, ?);

-- toolkit: activity_insert (2 rows or ids)
INSERT INTO [ostinato].[ostinato_activities] (task_hub, instance_id, execution_id, task_id, name, input, visible_at, dequeue_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?);

-- toolkit: activity_insert_claimed (2 rows or ids)
INSERT INTO [ostinato].[ostinato_activities] (task_hub, instance_id, execution_id, task_id, name, input, visible_at, dequeue_count, locked_by, lock_token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- toolkit: activity_lock (2 rows or ids)
UPDATE [ostinato].[ostinato_activities] SET visible_at = ?, locked_by = ?, lock_token = ?, dequeue_count = dequeue_count + 1 WHERE id IN (?, ?);

-- toolkit: activity_locks_in (2 rows or ids)
SELECT id, lock_token, visible_at FROM [ostinato].[ostinato_activities] WITH (UPDLOCK, HOLDLOCK, ROWLOCK) WHERE task_hub = ? AND id IN (?, ?);

-- toolkit: activity_peek
SELECT 1 FROM [ostinato].[ostinato_activities] WITH (READCOMMITTEDLOCK, READPAST) WHERE task_hub = ? AND visible_at <= ? ORDER BY (SELECT NULL) OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY;

-- toolkit: activity_renew
UPDATE [ostinato].[ostinato_activities] SET visible_at = ? WHERE task_hub = ? AND id = ? AND lock_token = ? AND visible_at > ?;

-- toolkit: dead_letter_delete
DELETE FROM [ostinato].[ostinato_dead_letters] WHERE task_hub = ? AND id = ?;

-- toolkit: dead_letter_insert
INSERT INTO [ostinato].[ostinato_dead_letters] (task_hub, instance_id, kind, body, reason, created_at) VALUES (?, ?, ?, ?, ?, ?);

-- toolkit: dead_letter_select
SELECT id, kind, instance_id, body, reason, created_at FROM [ostinato].[ostinato_dead_letters] WHERE task_hub = ? AND id = ?;

-- toolkit: dead_letters_delete
DELETE FROM [ostinato].[ostinato_dead_letters] WHERE task_hub = ? AND instance_id = ?;

-- toolkit: dead_letters_newest
SELECT id, kind, instance_id, body, reason, created_at FROM [ostinato].[ostinato_dead_letters] WHERE task_hub = ? AND instance_id = ? ORDER BY id DESC OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY;

-- toolkit: dead_letters_of
SELECT id, kind, instance_id, body, reason, created_at FROM [ostinato].[ostinato_dead_letters] WHERE task_hub = ? AND instance_id = ? ORDER BY id OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY;

-- toolkit: dead_letters_select
SELECT id, kind, instance_id, body, reason, created_at FROM [ostinato].[ostinato_dead_letters] WHERE task_hub = ? ORDER BY id OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY;

-- toolkit: histories_delete (2 rows or ids)
DELETE FROM [ostinato].[ostinato_history] WHERE task_hub = ? AND instance_id IN (?, ?);

-- toolkit: history_delete
DELETE FROM [ostinato].[ostinato_history] WHERE task_hub = ? AND instance_id = ?;

-- toolkit: history_insert (2 rows or ids)
INSERT INTO [ostinato].[ostinato_history] (task_hub, instance_id, event) VALUES (?, ?, ?), (?, ?, ?);

-- toolkit: history_rows
SELECT id, event FROM [ostinato].[ostinato_history] WHERE task_hub = ? AND instance_id = ? ORDER BY id;

-- toolkit: history_select
SELECT event FROM [ostinato].[ostinato_history] WHERE task_hub = ? AND instance_id = ? ORDER BY id;

-- toolkit: inbox_delete
DELETE FROM [ostinato].[ostinato_inbox] WHERE task_hub = ? AND instance_id = ?;

-- toolkit: inbox_delete_ids (2 rows or ids)
DELETE FROM [ostinato].[ostinato_inbox] WHERE id IN (?, ?);

-- toolkit: inbox_insert (2 rows or ids)
INSERT INTO [ostinato].[ostinato_inbox] (task_hub, instance_id, visible_at, body) VALUES (?, ?, ?, ?), (?, ?, ?, ?);

-- toolkit: inbox_visible_in (2 rows or ids)
SELECT id, instance_id, body FROM [ostinato].[ostinato_inbox] WHERE task_hub = ? AND visible_at <= ? AND instance_id IN (?, ?) ORDER BY id;

-- toolkit: instance_ids_in (2 rows or ids)
SELECT instance_id FROM [ostinato].[ostinato_instances] WHERE task_hub = ? AND instance_id IN (?, ?);

-- toolkit: instance_select
SELECT instance_id, name, execution_id, runtime_status, created_at, last_updated_at, input, output, custom_status, failure_details, parent_instance_id, history_size FROM [ostinato].[ostinato_instances] WHERE task_hub = ? AND instance_id = ?;

-- toolkit: instance_status
SELECT runtime_status FROM [ostinato].[ostinato_instances] WITH (UPDLOCK, HOLDLOCK, ROWLOCK) WHERE task_hub = ? AND instance_id = ?;

-- toolkit: instance_versions_in (2 rows or ids)
SELECT instance_id, execution_id, history_size FROM [ostinato].[ostinato_instances] WHERE task_hub = ? AND instance_id IN (?, ?);

-- toolkit: instances_in (2 rows or ids)
SELECT instance_id, name, execution_id, runtime_status, created_at, last_updated_at, input, output, custom_status, failure_details, parent_instance_id, history_size FROM [ostinato].[ostinato_instances] WHERE task_hub = ? AND instance_id IN (?, ?);

-- toolkit: instances_insert (2 rows or ids)
INSERT INTO [ostinato].[ostinato_instances] (task_hub, instance_id, name, execution_id, runtime_status, created_at, last_updated_at, input, output, custom_status, failure_details, parent_instance_id, history_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- toolkit: instances_upsert (2 rows or ids)
MERGE [ostinato].[ostinato_instances] WITH (HOLDLOCK) AS target USING (VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)) AS excluded (task_hub, instance_id, name, execution_id, runtime_status, created_at, last_updated_at, input, output, custom_status, failure_details, parent_instance_id, history_size) ON target.task_hub = excluded.task_hub AND target.instance_id = excluded.instance_id WHEN MATCHED THEN UPDATE SET name = excluded.name, execution_id = excluded.execution_id, runtime_status = excluded.runtime_status, created_at = excluded.created_at, last_updated_at = excluded.last_updated_at, input = excluded.input, output = excluded.output, custom_status = excluded.custom_status, failure_details = excluded.failure_details, parent_instance_id = excluded.parent_instance_id, history_size = excluded.history_size WHEN NOT MATCHED THEN INSERT (task_hub, instance_id, name, execution_id, runtime_status, created_at, last_updated_at, input, output, custom_status, failure_details, parent_instance_id, history_size) VALUES (excluded.task_hub, excluded.instance_id, excluded.name, excluded.execution_id, excluded.runtime_status, excluded.created_at, excluded.last_updated_at, excluded.input, excluded.output, excluded.custom_status, excluded.failure_details, excluded.parent_instance_id, excluded.history_size);

-- toolkit: queue_claim
SELECT instance_id, dequeue_count FROM [ostinato].[ostinato_orchestration_queue] WITH (UPDLOCK, READPAST, ROWLOCK) WHERE task_hub = ? AND visible_at <= ? ORDER BY visible_at OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY;

-- toolkit: queue_claim_in (2 rows or ids)
SELECT instance_id, dequeue_count FROM [ostinato].[ostinato_orchestration_queue] WITH (UPDLOCK, READPAST, ROWLOCK) WHERE task_hub = ? AND visible_at <= ? AND instance_id IN (?, ?);

-- toolkit: queue_delete
DELETE FROM [ostinato].[ostinato_orchestration_queue] WHERE task_hub = ? AND instance_id = ?;

-- toolkit: queue_hold
UPDATE [ostinato].[ostinato_orchestration_queue] SET visible_at = ?, locked_by = NULL, lock_token = ?, dequeue_count = dequeue_count - 1 WHERE task_hub = ? AND instance_id = ? AND lock_token = ? AND visible_at > ?;

-- toolkit: queue_lock (2 rows or ids)
UPDATE [ostinato].[ostinato_orchestration_queue] SET visible_at = ?, locked_by = ?, lock_token = ?, dequeue_count = dequeue_count + 1 WHERE task_hub = ? AND instance_id IN (?, ?);

-- toolkit: queue_locks_in (2 rows or ids)
SELECT instance_id, lock_token, visible_at FROM [ostinato].[ostinato_orchestration_queue] WITH (UPDLOCK, HOLDLOCK, ROWLOCK) WHERE task_hub = ? AND instance_id IN (?, ?);

-- toolkit: queue_peek
SELECT 1 FROM [ostinato].[ostinato_orchestration_queue] WITH (READCOMMITTEDLOCK, READPAST) WHERE task_hub = ? AND visible_at <= ? ORDER BY (SELECT NULL) OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY;

-- toolkit: queue_release (2 rows or ids)
UPDATE [ostinato].[ostinato_orchestration_queue] SET visible_at = (SELECT MIN(i.visible_at) FROM [ostinato].[ostinato_inbox] i WHERE i.task_hub = ostinato_orchestration_queue.task_hub AND i.instance_id = ostinato_orchestration_queue.instance_id), locked_by = NULL, lock_token = NULL, dequeue_count = CASE WHEN EXISTS (SELECT 1 FROM [ostinato].[ostinato_inbox] i WHERE i.task_hub = ostinato_orchestration_queue.task_hub AND i.instance_id = ostinato_orchestration_queue.instance_id AND i.visible_at <= ?) THEN dequeue_count ELSE 0 END WHERE task_hub = ? AND instance_id IN (?, ?);

-- toolkit: queue_release_completed (2 rows or ids)
UPDATE [ostinato].[ostinato_orchestration_queue] SET visible_at = (SELECT MIN(i.visible_at) FROM [ostinato].[ostinato_inbox] i WHERE i.task_hub = ostinato_orchestration_queue.task_hub AND i.instance_id = ostinato_orchestration_queue.instance_id), locked_by = NULL, lock_token = NULL, dequeue_count = 0 WHERE task_hub = ? AND instance_id IN (?, ?);

-- toolkit: queue_renew
UPDATE [ostinato].[ostinato_orchestration_queue] SET visible_at = ? WHERE task_hub = ? AND instance_id = ? AND lock_token = ? AND visible_at > ?;

-- toolkit: queue_reset
UPDATE [ostinato].[ostinato_orchestration_queue] SET visible_at = NULL, locked_by = NULL, lock_token = NULL, dequeue_count = 0 WHERE task_hub = ? AND instance_id = ?;

-- toolkit: queue_uncount
UPDATE [ostinato].[ostinato_orchestration_queue] SET dequeue_count = dequeue_count - 1 WHERE task_hub = ? AND instance_id = ? AND dequeue_count > 0;

-- toolkit: queue_upsert (2 rows or ids)
MERGE [ostinato].[ostinato_orchestration_queue] WITH (HOLDLOCK) AS target USING (VALUES (?, ?, ?, ?), (?, ?, ?, ?)) AS excluded (task_hub, instance_id, visible_at, dequeue_count) ON target.task_hub = excluded.task_hub AND target.instance_id = excluded.instance_id WHEN MATCHED THEN UPDATE SET visible_at = CASE WHEN target.lock_token IS NULL AND (target.visible_at IS NULL OR excluded.visible_at < target.visible_at) THEN excluded.visible_at ELSE target.visible_at END WHEN NOT MATCHED THEN INSERT (task_hub, instance_id, visible_at, dequeue_count) VALUES (excluded.task_hub, excluded.instance_id, excluded.visible_at, excluded.dequeue_count);

-- toolkit: instance_delete_if (3 statuses)
DELETE FROM [ostinato].[ostinato_instances] WHERE task_hub = ? AND instance_id = ? AND runtime_status IN (?, ?, ?);

-- toolkit: query (all filters)
SELECT instance_id, name, execution_id, runtime_status, created_at, last_updated_at, input, output, custom_status, failure_details, parent_instance_id, history_size FROM [ostinato].[ostinato_instances] WHERE task_hub = ? AND instance_id > ? AND LEFT(instance_id, ?) = ? AND LEFT(name, ?) = ? AND runtime_status IN (?, ?) AND created_at >= ? AND created_at <= ? ORDER BY instance_id OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY;
