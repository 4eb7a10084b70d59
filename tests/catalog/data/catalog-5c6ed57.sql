BEGIN TRANSACTION;
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    at REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
INSERT INTO "events" VALUES(1,'20261122-231721-3d96',1.79538944172934103018e+09,'info','@ROOT@/ssd: ASC MHL generation 1: 2 file(s)');
CREATE TABLE file_meta (   -- what the layout planner learnt (castoff.layout)
    file_id INTEGER PRIMARY KEY REFERENCES files(id),
    job_id TEXT NOT NULL,
    capture_time TEXT,               -- ISO 8601, with the offset when known
    capture_source TEXT,             -- exif, quicktime, mtime
    device TEXT,
    device_source TEXT,              -- exif, quicktime, card, none
    file_type TEXT,                  -- Photos, RAW, Video, Audio, Sidecars, Other
    sidecar_of TEXT,                 -- the original's name when this file travels with it
    layout_path TEXT NOT NULL,       -- where the layout put it, under each destination's prefix
    original_path TEXT NOT NULL
);
INSERT INTO "file_meta" VALUES(1,'20261122-231721-3d96','2026-11-20T10:00:00+00:00','mtime','Canon','card','Photos',NULL,'card/DCIM/100CANON/IMG_0001.JPG','card/DCIM/100CANON/IMG_0001.JPG');
INSERT INTO "file_meta" VALUES(2,'20261122-231721-3d96','2026-11-20T10:00:00+00:00','mtime','Canon','card','RAW',NULL,'card/DCIM/100CANON/IMG_0002.CR3','card/DCIM/100CANON/IMG_0002.CR3');
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    rel_path TEXT NOT NULL,
    abs_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL,            -- pending, read, failed, skipped (junk/special/symlink)
    blake3 TEXT,
    md5 TEXT,
    error TEXT,
    error_code TEXT,
    xxh128 TEXT,                     -- for ASC MHL, from the same read as blake3
    UNIQUE (job_id, rel_path)
);
INSERT INTO "files" VALUES(1,'20261122-231721-3d96','card/DCIM/100CANON/IMG_0001.JPG','@ROOT@/card/DCIM/100CANON/IMG_0001.JPG',9,1795168800000000000,'read','f1a30eefc45f96580b3d863a3206c97e5992997135074200fb4ef435d6a6eb15',NULL,NULL,NULL,'7b78546a74b2ca2e690bf404206f580f');
INSERT INTO "files" VALUES(2,'20261122-231721-3d96','card/DCIM/100CANON/IMG_0002.CR3','@ROOT@/card/DCIM/100CANON/IMG_0002.CR3',10,1795168800000000000,'read','4e236d121829f409603f8724c89ce16dd44df94e8f0e0bdfa5d5db059e2dcc14',NULL,NULL,NULL,'beb8da35d1c0679fe74a278612c1f1be');
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    status TEXT NOT NULL,            -- running, done, failed, interrupted
    exit_code INTEGER,
    argv TEXT NOT NULL,
    sources TEXT NOT NULL,           -- JSON list
    destinations TEXT NOT NULL,      -- JSON list of {name, ident, kind}
    options TEXT NOT NULL,           -- JSON object
    report_path TEXT,
    pid INTEGER
);
INSERT INTO "jobs" VALUES('20261122-231721-3d96',1.79538944171036052698e+09,1.79538944172575068471e+09,'done',0,'["castoff", "copy", "card", "--to", "@ROOT@/ssd", "-q"]','["@ROOT@/card"]','[{"name": "@ROOT@/ssd", "ident": "local:@ROOT@/ssd", "kind": "local", "spec": "@ROOT@/ssd"}]','{"on_conflict": "rename", "memory": 268435456, "chunk_size": 16777216}','@ROOT@/home/reports/20261122-231721-3d96.json',681);
CREATE TABLE landed (
    dest_ident TEXT NOT NULL,
    planned TEXT NOT NULL,           -- where the file was meant to land
    target TEXT NOT NULL,            -- where it did (differs after a conflict rename)
    src_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    blake3 TEXT NOT NULL,
    etag TEXT,
    verify_method TEXT NOT NULL,
    verified_at REAL NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (dest_ident, planned)
);
INSERT INTO "landed" VALUES('local:@ROOT@/ssd','@ROOT@/ssd/card/DCIM/100CANON/IMG_0001.JPG','@ROOT@/ssd/card/DCIM/100CANON/IMG_0001.JPG','@ROOT@/card/DCIM/100CANON/IMG_0001.JPG',9,1795168800000000000,'f1a30eefc45f96580b3d863a3206c97e5992997135074200fb4ef435d6a6eb15',NULL,'read-back blake3',1795389441.7172,'20261122-231721-3d96');
INSERT INTO "landed" VALUES('local:@ROOT@/ssd','@ROOT@/ssd/card/DCIM/100CANON/IMG_0002.CR3','@ROOT@/ssd/card/DCIM/100CANON/IMG_0002.CR3','@ROOT@/card/DCIM/100CANON/IMG_0002.CR3',10,1795168800000000000,'4e236d121829f409603f8724c89ce16dd44df94e8f0e0bdfa5d5db059e2dcc14',NULL,'read-back blake3',1.79538944172519731516e+09,'20261122-231721-3d96');
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('schema_version','1');
CREATE TABLE meta_sidecars (   -- JSON sidecar objects (<key>.castoff.json)
    job_id TEXT NOT NULL,
    file_id INTEGER NOT NULL,
    dest_ident TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,            -- verified, already, exists, failed
    error TEXT,
    PRIMARY KEY (file_id, dest_ident)
);
CREATE TABLE outcomes (
    job_id TEXT NOT NULL,
    file_id INTEGER NOT NULL REFERENCES files(id),
    dest_ident TEXT NOT NULL,
    dest_name TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,            -- pending, verified, already, skipped, failed, incomplete
    verify_method TEXT,
    verified_at REAL,
    etag TEXT,
    error TEXT,
    error_code TEXT,
    detail TEXT,
    PRIMARY KEY (file_id, dest_ident)
);
INSERT INTO "outcomes" VALUES('20261122-231721-3d96',1,'local:@ROOT@/ssd','@ROOT@/ssd','@ROOT@/ssd/card/DCIM/100CANON/IMG_0001.JPG','verified','read-back blake3',1795389441.7172,NULL,NULL,NULL,NULL);
INSERT INTO "outcomes" VALUES('20261122-231721-3d96',2,'local:@ROOT@/ssd','@ROOT@/ssd','@ROOT@/ssd/card/DCIM/100CANON/IMG_0002.CR3','verified','read-back blake3',1.79538944172519731516e+09,NULL,NULL,NULL,NULL);
CREATE TABLE partials (
    dest_ident TEXT NOT NULL,
    path TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (dest_ident, path)
);
CREATE TABLE parts (
    upload_id INTEGER NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    size INTEGER NOT NULL,
    md5 TEXT,
    etag TEXT,
    PRIMARY KEY (upload_id, idx)
);
CREATE TABLE uploads (
    id INTEGER PRIMARY KEY,
    dest_ident TEXT NOT NULL,
    dest_name TEXT NOT NULL,
    target TEXT NOT NULL,
    src_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    part_size INTEGER NOT NULL,
    token TEXT NOT NULL,             -- JSON
    blake3 TEXT,
    created_at REAL NOT NULL,
    job_id TEXT NOT NULL,
    state TEXT NOT NULL              -- open (finished and aborted uploads are deleted)
);
CREATE INDEX files_by_source ON files (abs_path, size, mtime_ns);
CREATE INDEX outcomes_by_job ON outcomes (job_id);
CREATE INDEX landed_by_src ON landed (dest_ident, src_path);
CREATE INDEX uploads_by_target ON uploads (dest_ident, target);
CREATE INDEX file_meta_by_job ON file_meta (job_id);
COMMIT;
