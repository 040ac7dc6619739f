CREATE TABLE ostinato_schema (
    version INTEGER NOT NULL,
    description TEXT NOT NULL,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (version)
);

-- migration 1: instances, history, inbox, orchestration queue, activity queue

CREATE TABLE ostinato_instances (
    task_hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    runtime_status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_updated_at INTEGER NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    failure_details TEXT,
    parent_instance_id TEXT,
    history_size INTEGER NOT NULL,
    PRIMARY KEY (task_hub, instance_id)
) WITHOUT ROWID;

CREATE TABLE ostinato_history (
    id INTEGER PRIMARY KEY,
    task_hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    event TEXT NOT NULL
);

CREATE TABLE ostinato_inbox (
    id INTEGER PRIMARY KEY,
    task_hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    body TEXT NOT NULL
);

CREATE TABLE ostinato_orchestration_queue (
    task_hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    visible_at INTEGER,
    locked_by TEXT,
    lock_token TEXT,
    dequeue_count INTEGER NOT NULL,
    PRIMARY KEY (task_hub, instance_id)
) WITHOUT ROWID;

CREATE TABLE ostinato_activities (
    id INTEGER PRIMARY KEY,
    task_hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT,
    visible_at INTEGER NOT NULL,
    locked_by TEXT,
    lock_token TEXT,
    dequeue_count INTEGER NOT NULL
);

CREATE INDEX ostinato_history_instance ON ostinato_history (task_hub, instance_id, id);

CREATE INDEX ostinato_inbox_instance ON ostinato_inbox (task_hub, instance_id, visible_at);

CREATE INDEX ostinato_orchestration_queue_visible ON ostinato_orchestration_queue (task_hub, visible_at);

CREATE INDEX ostinato_activities_visible ON ostinato_activities (task_hub, visible_at);

CREATE INDEX ostinato_activities_instance ON ostinato_activities (task_hub, instance_id);

-- migration 2: history rows hold a run of events

-- migration 3: leases

CREATE TABLE ostinato_leases (
    task_hub TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (task_hub, name)
);
